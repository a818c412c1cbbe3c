"""The `athenaeum` command line (`main`) and its generated reference (`reference`)."""
