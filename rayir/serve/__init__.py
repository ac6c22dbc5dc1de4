"""Serving: shard actors, the coordinator (``Searcher``), search and re-rank."""
