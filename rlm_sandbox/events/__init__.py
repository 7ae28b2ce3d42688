"""What a run did, as a stream of events: the trace, its listeners and the JSONL writer."""
