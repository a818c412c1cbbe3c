"""Tests of athenaeum's bundle side."""
