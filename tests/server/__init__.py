"""Tests of athenaeum's server side."""
