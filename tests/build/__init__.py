"""Tests of athenaeum's build side."""
