"""Tests of athenaeum's infra side."""
