"""The living library's ingest: its construct (infrastructure.py); its code is the `athenaeum`
package without the CLI (infra/staging.py), its handler `athenaeum.ingest.lambda_handler`."""
