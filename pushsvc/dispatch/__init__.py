"""The delivery pipeline: claim, fan out, classify, record."""
