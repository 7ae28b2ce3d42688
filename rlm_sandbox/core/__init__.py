"""The loop and everything it decides on the host: a run at any depth, the broker serving
callbacks, the budget ledger, prompts, parsing of replies, answer schemas, the result,
and the one sync bridge. Never calls Docker directly and never prints."""
