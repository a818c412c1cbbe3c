"""The index being served: where it comes from (`source`, the index settings read once into
one case) and the provider that loads it and keeps it current (`provider`, on the storage
layer). Imports nothing of the HTTP app, so the Lambda authorizer can take `source` alone."""
