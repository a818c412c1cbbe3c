"""The AWS deployment of Athenaeum: one CDK stack (`AthenaeumStack`, in stack.py) composed of one
construct per concern, each in its own folder beside its runtime code."""
