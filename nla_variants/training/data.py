"""The Lightning data module over an activation store."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    Subset,
    WeightedRandomSampler,
)

from nla_variants.common.distributed import share_of
from nla_variants.core.vectors import derangement
from nla_variants.data.store import SplitRows, StoredDataset, vector_matrix


def load_split(dataset: StoredDataset, split: str) -> SplitRows:
    prompt = dataset.has_column("prompt")
    columns = ["example_id", "prefix", "explanation", "vector", *(["prompt"] if prompt else [])]
    table = dataset.table(split, columns)
    return SplitRows(
        vectors=vector_matrix(table),
        explanations=table.column("explanation").to_pylist(),
        prefixes=table.column("prefix").to_pylist(),
        example_ids=table.column("example_id").to_pylist(),
        prompts=table.column("prompt").to_pylist() if prompt else None,
    )


class _RowsDataset(Dataset):
    """Rows of a split; with `partners` (a derangement) each row also carries another row's
    vector as its shuffled control."""

    def __init__(self, rows: SplitRows, partners: torch.Tensor | None = None) -> None:
        self.rows = rows
        self.partners = partners

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        r = self.rows
        item = {
            "vector": torch.from_numpy(r.vectors[i]),
            "explanation": r.explanations[i],
            "prefix": r.prefixes[i],
            "rendered": r.rendered,
        }
        if self.partners is not None:
            item["shuffled"] = torch.from_numpy(r.vectors[int(self.partners[i])])
        return item


def collate(items: list[dict]) -> dict:
    batch = {
        "vectors": torch.stack([it["vector"] for it in items]),
        "explanations": [it["explanation"] for it in items],
        "prefixes": [it["prefix"] for it in items],
        "rendered": [it["rendered"] for it in items],
    }
    if "shuffled" in items[0]:
        batch["shuffled"] = torch.stack([it["shuffled"] for it in items])
    return batch


class ShardedBatches(Sampler[list[int]]):
    """Global batches of `batch_size` rows in the order `order` draws (one pass each epoch),
    of which this rank yields its contiguous share. The global order is the same at any number
    of ranks, and on one rank it is exactly the order of a plain shuffled DataLoader with the
    same generator, so a config trains on the same batches on one device or eight. `skip`: the
    first global batches a resumed run already trained on; they are drawn (so the generator
    moves on exactly as before) but not yielded."""

    def __init__(
        self,
        order: Sampler[int],
        batch_size: int,
        drop_last: bool,
        rank: int,
        world: int,
        skip: int = 0,
    ) -> None:
        self.order, self.batch_size, self.drop_last = order, batch_size, drop_last
        self.rank, self.world, self.skip = rank, world, skip

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        rows = list(self.order)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            if self.skip:
                self.skip -= 1
                continue
            batch = rows[start : start + self.batch_size]
            yield batch[share_of(len(batch), self.rank, self.world)]


class NLADataModule(L.LightningDataModule):
    """Serves one split of a prepared dataset for training, shuffled with a seeded generator
    (rows without a teacher explanation are left out of supervised splits), and optionally the
    first `val_samples` explained rows of `val_split` as a held-out set whose rows carry a
    shuffled partner vector (the AV's NLL-gap check). `extra` rows (the AV's own explanations
    for the AR) are mixed in at `extra_share` of the training samples. `skip_batches`: a
    resumed warm start continues the data order where its checkpoint stopped. `prompts`: the
    training rows also carry the teacher's text-only explanations (`SplitRows.with_prompts`,
    for the AR)."""

    def __init__(
        self,
        dataset: StoredDataset,
        train_split: str,
        batch_size: int,
        seed: int,
        require_explanations: bool = True,
        val_split: str | None = None,
        val_samples: int = 0,
        extra: SplitRows | None = None,
        extra_share: float = 0.0,
        skip_batches: int = 0,
        prompts: bool = False,
    ) -> None:
        super().__init__()
        self.prompts = prompts
        self.dataset = dataset
        self.train_split = train_split
        self.batch_size = batch_size
        self.seed = seed
        self.require_explanations = require_explanations
        self.val_split, self.val_samples = val_split, val_samples
        self.extra, self.extra_share = extra, extra_share
        self.skip_batches = skip_batches  # a resumed warm start's steps so far
        self.rows: SplitRows | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.rows is None:
            rows = load_split(self.dataset, self.train_split)
            rows = rows.with_explanations() if self.require_explanations else rows
            self.rows = rows.with_prompts() if self.prompts else rows

    def _ranks(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        """`batch_size` is the global batch: each rank loads its share of every batch."""
        self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        if self.extra is None or not self.extra_share or not len(self.extra):
            data = _RowsDataset(self.rows)
            order = RandomSampler(data, generator=generator)
            drop_last = len(self.rows) > self.batch_size
            # a plain shuffled loader draws its worker base seed from this generator first
            loader_generator = generator
        else:
            n, m = len(self.rows), len(self.extra)
            share = self.extra_share
            weights = torch.cat([torch.full((n,), (1 - share) / n), torch.full((m,), share / m)])
            data = ConcatDataset([_RowsDataset(self.rows), _RowsDataset(self.extra)])
            order = WeightedRandomSampler(weights, n + m, generator=generator)
            drop_last = True
            loader_generator = None  # this loader never had one: its base seed is torch's
        batches = ShardedBatches(
            order, self.batch_size, drop_last, *self._ranks(), skip=self.skip_batches
        )
        # the generator is drawn from as before, so one rank sees exactly the batches it saw
        return DataLoader(
            data, batch_sampler=batches, generator=loader_generator, collate_fn=collate
        )

    def val_dataloader(self) -> DataLoader:
        """The held-out rows, split over the ranks (the module gathers their scores)."""
        rows = load_split(self.dataset, self.val_split).with_explanations()
        n = min(len(rows), self.val_samples)
        rows = rows.take(range(n))
        partners = derangement(n, self.seed)
        mine = range(n)[share_of(n, *self._ranks())]
        data = Subset(_RowsDataset(rows, partners), list(mine))
        return DataLoader(data, batch_size=self.batch_size, collate_fn=collate)
