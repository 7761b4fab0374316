"""Token ids back to text for `--text` exports, with the run's own tokenizer (checked by its sha256)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate import parts
from curate.export.output import ExportUsageError
from curate.export.units import Entries


class Decoder:
    def __init__(self, path: str | Path, want_sha256: str | None):
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise ExportUsageError(f"--text: tokenizer {path} not found (give the run's tokenizer.json with --tokenizer)")
        digest = parts.sha256_file(path)
        if want_sha256 and digest != want_sha256:
            raise ExportUsageError(f"--text: tokenizer {path} has sha256 {digest[:16]}…, the shards were made with "
                                   f"{want_sha256[:16]}…")
        self.tokenizer = Tokenizer.from_file(str(path))

    def _decode(self, tokens: np.ndarray, offsets: np.ndarray) -> list[str]:
        ids = tokens.astype(np.int64).tolist()
        bounds = offsets.tolist()
        return self.tokenizer.decode_batch([ids[a:b] for a, b in zip(bounds, bounds[1:])], skip_special_tokens=False)

    def documents(self, entries: Entries) -> list[str]:
        return self._decode(entries.tokens, entries.offsets)

    def pieces(self, entries: Entries) -> list[str]:
        """One text per piece of every sequence (a piece cut mid-token decodes with replacement characters)."""
        return self._decode(entries.tokens, np.concatenate([[0], np.cumsum(entries.rows.doc_lengths, dtype=np.int64)]))
