"""Amazon S3 Vectors as a search backend for libraries that outgrow one function's bundle:
publishing a bundle's chunks into a vector index (`publish`). boto3 only."""
