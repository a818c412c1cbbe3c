"""Where the index and the library are kept: S3 and AWS Secrets Manager.

`location` (an S3 address), `client` (the one place an S3 client is made), `errors` (what S3
answered, for messages), `listing` (the one paginated listing of keys), `download` (a bundle
copied to local disk, verified on the way in), `published` (the published index: versions behind
a pointer, the writer's lease), `secrets` (a Secrets Manager secret's text).

Server, ingest, library and infra import this layer; it imports only the bundle's format and
verification and the errors. Nothing is imported here: the Lambda authorizer carries
`location` alone, and boto3 is imported on first use (the Lambda runtime has it; locally it is
the `s3` extra).
"""
