"""Reading files: content sniffing, uploads, probing and sampling, bounded decoding in an isolated child."""
