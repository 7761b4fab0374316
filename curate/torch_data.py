"""A PyTorch `IterableDataset` over `PackedShards` (needs torch; curate itself does not).

    from torch.utils.data import DataLoader
    from curate.loader import PackedShards
    from curate.torch_data import TorchPackedShards

    data = PackedShards(location, rank=rank, world_size=world_size, seed=0)
    loader = DataLoader(TorchPackedShards(data, batch_size=8), batch_size=8, num_workers=2)
    for epoch in range(start_epoch, epochs):
        if epoch != start_epoch:
            data.set_epoch(epoch)          # workers get a fresh copy of `data` at every iter(loader)
        for step, batch in enumerate(loader):
            ...
            state = data.state_dict(consumed=(step + 1) * 8)   # sequences this rank consumed this epoch

Each DataLoader worker reads every num_workers-th block of `batch_size` sequences of the rank's share
(`PackedShards.worker_split`), so the batches the DataLoader hands out in order are the rank's share in
order, and "consumed" counts in the main process are exact. Items are collatable tensors: `input_ids`
(int64), `position_ids` and `segment_ids` (from the document boundaries, see `curate.packed_attention`)
and `index`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from curate.loader import PackedShards
from curate.packed_attention import position_ids, segment_ids


class TorchPackedShards(IterableDataset):
    def __init__(self, data: PackedShards, batch_size: int = 1):
        super().__init__()
        self.data, self.batch_size = data, int(batch_size)

    def __iter__(self):
        info = get_worker_info()
        data = self.data if info is None else self.data.worker_split(info.id, info.num_workers, self.batch_size)
        n = data.seq_len
        for item in data:
            yield {"input_ids": torch.from_numpy(item["input_ids"].astype(np.int64)),
                   "position_ids": torch.from_numpy(position_ids(item["doc_lengths"], n)),
                   "segment_ids": torch.from_numpy(segment_ids(item["doc_lengths"], n).astype(np.int64)),
                   "index": item["index"]}
