"""Retrieval over a loaded bundle: the ONNX query encoder (`encoder`), BM25 (`lexical`) and the
hybrid search engine (`engine`).

Serve side: numpy, faiss, onnxruntime, tokenizers and PyStemmer only.
"""
