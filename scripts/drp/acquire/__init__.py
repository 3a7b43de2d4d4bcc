"""Acquisition: checksummed, resumable downloads from a package index, figshare or Zenodo (``download``), safe
extraction of archives (``archive``), the allow-listed unpickler for pickled data files (``safe_pickle``) and
the download rule's entry point that fetches every file of a configured source (``fetch``)."""
