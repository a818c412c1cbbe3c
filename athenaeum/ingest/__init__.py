"""The living library: documents in an S3 prefix, ingested into published index versions
(athenaeum.ingest.pipeline) that serving follows (athenaeum.storage.published)."""
