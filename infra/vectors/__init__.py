"""The Amazon S3 Vectors index a library past one function's bundle is searched in
(index_backend=s3vectors): its vector bucket and index (infrastructure.py), filled by
`athenaeum publish` (athenaeum.s3vectors.publish), which deploy.sh runs after each deploy."""
