"""Tests of athenaeum's retrieval side."""
