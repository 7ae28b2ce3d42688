"""What a run did, as one flat stream of typed events.

``types`` defines every kind; ``stream`` emits them in order to listeners; ``jsonl`` writes
and reads them; ``tree`` rebuilds the runs; ``schema`` is the shipped JSON Schema;
``printer`` is the plain progress printer. docs/EVENTS.md describes every kind and field.
"""

from .jsonl import JsonlWriter, TraceFile, TraceFileError, read_events, write_jsonl
from .stream import EventLog, Listener, RunRecorder
from .tree import RunNode, build_tree
from .types import EVENT_TYPES, KINDS, SCHEMA_VERSION, Event, EventBase

__all__ = ["EVENT_TYPES", "KINDS", "SCHEMA_VERSION", "Event", "EventBase", "EventLog", "JsonlWriter", "Listener",
           "RunNode", "RunRecorder", "TraceFile", "TraceFileError", "build_tree", "read_events", "write_jsonl"]
