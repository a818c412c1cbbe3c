"""Tests of athenaeum's cli side."""
