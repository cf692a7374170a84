"""Row ``disk``: bytes on disk for the first acceleration and for each added one (target: an added
acceleration costs <= 25% of the first one's bytes).

Measured on the ``shards`` row's IXI-sized shard (made here when that row did not run): the first
acceleration writes the shard and its mask file; an added acceleration writes only its mask file
(``masks/R<acceleration>.npz``), because shards hold no k-space and readers apply the mask. The row
writes the added masks (``ADDED``), reads one slice under each to show the shard serves it, and
sums the file sizes; the mask files are shared by every subject, so per subject the added bytes
are smaller still. For comparison, ``disk_format3_bytes_per_subject`` computes (not measures) what
format 3 stored per subject and acceleration: 8 bytes (complex64 k-space) + 4 (target) per pixel.
"""

from __future__ import annotations

from ssimrecon_bench.core import Context, Options, Row, at_most
from ssimrecon_bench.shards import make_shards, save_config_mask

#: accelerations the row adds beside the config's
ADDED = (4.0, 8.0)
#: an added acceleration may cost at most this fraction of the first one's bytes
ADDED_FRACTION_TARGET = 0.25


def bench_disk(opts: Options, ctx: Context) -> list[Row]:
    """First-acceleration bytes per subject, bytes per added acceleration and their ratio."""
    from ssimrecon.kspace.mask import load_mask
    from ssimrecon.kspace.shards import ShardReader

    if not ctx.shards:
        make_shards(opts, ctx, timed=0)
    assert ctx.mask is not None  # make_shards saved it
    shard = ctx.shards[0]
    first = shard.stat().st_size + ctx.mask.stat().st_size
    added = []
    for acceleration in ADDED:
        with ShardReader(shard) as reader:
            size = reader.shape[1:]
        path = save_config_mask(opts, ctx.mask.parent.parent, size, acceleration)
        with ShardReader(shard, load_mask(path)[0]) as reader:
            kspace, _ = reader.read_slice(reader.num_slices // 2)
        assert kspace.shape == size
        added.append(path.stat().st_size)
    with ShardReader(shard) as reader:
        s, h, w = reader.shape
    first_r = float(opts.config["mask"]["acceleration"])
    per_added = max(added)
    return [
        Row(
            "disk_first_r_bytes_per_subject",
            first / 1e6,
            "MB",
            None,
            f"shard ({s} slices {h}x{w}) + mask file at R={first_r:g}",
        ),
        Row(
            "disk_added_r_bytes",
            per_added / 1e6,
            "MB",
            None,
            f"largest of the mask files of R = {', '.join(f'{r:g}' for r in ADDED)} "
            "(shared by all subjects; no shard bytes)",
        ),
        Row(
            "disk_added_r_fraction",
            per_added / first,
            "fraction",
            at_most(ADDED_FRACTION_TARGET),
            "bytes of an added acceleration / bytes of the first, one subject",
        ),
        Row(
            "disk_format3_bytes_per_subject",
            s * h * w * 12 / 1e6,
            "MB",
            None,
            "computed, not measured: format 3 stored k-space (8 B/px) + target (4 B/px) per R",
        ),
    ]
