"""The build side: PDFs to markdown (`convert`), the converted-markdown format (`sources`),
chunking, embedding with sentence-transformers, the indexer that writes a bundle, and the BEIR
evaluation.

It may import anything heavy (torch, sentence-transformers, PyMuPDF); the serve side imports
nothing from here.
"""
