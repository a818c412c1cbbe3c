"""The AWS deployment of Athenaeum: one CDK stack (`AtheneumStack`) and its runtime pieces."""
