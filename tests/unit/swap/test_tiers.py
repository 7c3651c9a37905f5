"""Warm/cold tiers on real files: promotion verifies checksums, the budget holds, eviction order."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from coe.swap.image import ImageMeta, ImageMismatch, check_fits, file_checksum, read_header, stat_identity
from coe.swap.tiers import ChecksumMismatch, EvictionPolicy, Tier, TierPaths, TierStore

MB = 1 << 20


def write_image(store: TierStore, expert: str, seed: int, mb: int = 1) -> Path:
    path = store.paths.cold(expert)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(mb * MB // 4, generator=g)}, str(path))
    ImageMeta(expert, "fp", file_checksum(path), path.stat().st_size, "src").write(path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> TierStore:
    return TierStore(TierPaths(tmp_path / "cold", tmp_path / "warm"), warm_budget_bytes=int(2.5 * MB))


def test_promote_copies_verified_bytes_and_marks_warm(store: TierStore) -> None:
    cold = write_image(store, "a", 1)
    assert store.tier("a") is Tier.cold
    warm = store.promote("a")
    assert warm is not None and store.tier("a") is Tier.warm
    assert warm.read_bytes() == cold.read_bytes()


def test_corrupt_cold_image_is_never_promoted(store: TierStore) -> None:
    cold = write_image(store, "a", 1)
    data = bytearray(cold.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cold.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch):
        store.promote("a")
    assert store.tier("a") is Tier.cold
    assert [p.name for p in store.paths.warm_dir.iterdir() if p.name != ".lock"] == []


def test_a_verified_image_is_trusted_until_its_file_changes(store: TierStore) -> None:
    cold = write_image(store, "a", 1)
    meta = ImageMeta.read(cold)
    assert not meta.trusts(cold)  # never verified: the first load hashes it
    meta.verified_as(stat_identity(cold)).write(cold)
    assert ImageMeta.read(cold).trusts(cold)
    data = bytearray(cold.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cold.write_bytes(bytes(data))  # rewritten in place: same inode and size, new mtime/ctime
    assert not ImageMeta.read(cold).trusts(cold)


def test_a_file_renamed_over_a_verified_image_is_not_trusted(store: TierStore) -> None:
    cold = write_image(store, "a", 1)
    ImageMeta.read(cold).verified_as(stat_identity(cold)).write(cold)
    other = cold.with_name("other.safetensors")
    other.write_bytes(cold.read_bytes())
    os.replace(other, cold)  # same bytes even, but another file: hashed again
    assert not ImageMeta.read(cold).trusts(cold)


def test_sidecars_written_before_verification_was_recorded_still_load(store: TierStore) -> None:
    import json

    cold = write_image(store, "a", 1)
    sidecar = cold.with_name(cold.name + ".json")
    old = json.loads(sidecar.read_text())
    old.pop("verified")
    sidecar.write_text(json.dumps(old))
    assert ImageMeta.read(cold).verified is None and not ImageMeta.read(cold).trusts(cold)


def test_sidecars_with_a_sha256_checksum_are_still_checked_with_it(store: TierStore) -> None:
    """Images written before slot images took xxh3-128 checksums: their sha256 still verifies them,
    and a corrupted one is still refused."""
    import hashlib
    import json

    cold = write_image(store, "a", 1)
    sidecar = cold.with_name(cold.name + ".json")
    old = json.loads(sidecar.read_text())
    del old["checksum"]
    old["sha256"] = hashlib.sha256(cold.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(old))
    assert ImageMeta.read(cold).checksum == f"sha256:{old['sha256']}"
    assert store.promote("a") is not None
    store.evict("a")
    data = bytearray(cold.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cold.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch):
        store.promote("a")


def test_budget_evicts_least_recently_used(store: TierStore) -> None:
    for i, name in enumerate("abc"):
        write_image(store, name, i)
    store.promote("a")
    time.sleep(0.01)
    store.promote("b")
    time.sleep(0.01)
    store.touch("a")  # a is now the most recent
    store.promote("c")  # 3 x 1 MB > 2.5 MB: b goes
    assert [store.tier(x) for x in "abc"] == [Tier.warm, Tier.cold, Tier.warm]
    assert store.warm_bytes() <= store.warm_budget_bytes


def test_lfu_keeps_the_frequently_used(tmp_path: Path) -> None:
    store = TierStore(TierPaths(tmp_path / "cold", tmp_path / "warm"), int(2.5 * MB), EvictionPolicy.lfu)
    for i, name in enumerate("abc"):
        write_image(store, name, i)
    store.promote("a")
    for _ in range(5):
        store.touch("a")
    time.sleep(0.01)
    store.promote("b")
    store.touch("b")
    store.promote("c")  # a is older but used 5 times: b goes
    assert [store.tier(x) for x in "abc"] == [Tier.warm, Tier.cold, Tier.warm]


def test_image_larger_than_budget_stays_cold(store: TierStore) -> None:
    write_image(store, "big", 1, mb=3)
    assert store.promote("big") is None and store.tier("big") is Tier.cold


def test_check_fits_names_the_difference(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(4, dtype=torch.bfloat16), "b": torch.zeros(2, 2)}, str(path))
    data_start, entries = read_header(path)
    assert sorted(e.name for e in entries) == ["a", "b"] and data_start > 8
    check_fits(path, [("a", "BF16", (4,)), ("b", "F32", (2, 2))])
    with pytest.raises(ImageMismatch, match="differing \\['b'\\]"):
        check_fits(path, [("a", "BF16", (4,)), ("b", "F32", (4,))])
    with pytest.raises(ImageMismatch, match="missing \\['c'\\]"):
        check_fits(path, [("a", "BF16", (4,)), ("b", "F32", (2, 2)), ("c", "F32", (1,))])
    assert os.path.getsize(path) > 0


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A real 2 MiB tmpfs, like a container's small /dev/shm (mounting needs root, as CI has)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a 2 MiB tmpfs (CI runs as root, so CI covers this path)")
    mount = tmp_path / "shm"
    mount.mkdir()
    import subprocess

    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_too_small_tmpfs_means_cold_only_with_one_message(tmp_path: Path, tiny_tmpfs: Path, caplog) -> None:
    store = TierStore(TierPaths(tmp_path / "cold", tiny_tmpfs / "warm"), warm_budget_bytes=64 * MB)
    store.headroom_bytes = 0
    write_image(store, "a", 1, mb=3)  # 3 MB image, 2 MiB tmpfs: the budget says yes, the disk says no
    write_image(store, "b", 2, mb=3)
    with caplog.at_level("WARNING"):
        assert store.promote("a") is None
        assert store.promote("b") is None
    assert [store.tier(x) for x in "ab"] == [Tier.cold, Tier.cold]
    warnings = [r for r in caplog.records if "warm tier off" in r.message]
    assert len(warnings) == 1 and "MiB free" in warnings[0].message
    assert sorted(p.name for p in store.paths.warm_dir.iterdir()) == [".lock"]


def test_a_write_that_runs_out_of_room_leaves_no_partial_file(tmp_path: Path, tiny_tmpfs: Path, monkeypatch) -> None:
    store = TierStore(TierPaths(tmp_path / "cold", tiny_tmpfs / "warm"), warm_budget_bytes=64 * MB)
    write_image(store, "a", 1, mb=3)
    # As if another process filled the tmpfs between the room check and the write: the write hits ENOSPC.
    monkeypatch.setattr(store, "_has_room", lambda expert, nbytes: True)
    assert store.promote("a") is None
    assert store.tier("a") is Tier.cold and "failed" in (store.warm_refused or "")
    assert sorted(p.name for p in store.paths.warm_dir.iterdir()) == [".lock"]
    assert store.promote("a") is None  # and it keeps working, cold-only


def test_after_evict_runs_only_when_images_were_evicted_and_before_the_copy(store: TierStore) -> None:
    """An engine keeping evicted images mapped must let go of them before the free space is checked."""
    for i, name in enumerate("abc"):
        write_image(store, name, i)
    calls: list[list[str]] = []

    def record() -> None:
        calls.append(sorted(p.stem for p in store.paths.warm_dir.glob("*.safetensors")))

    store.promote("a", after_evict=record)
    store.promote("b", after_evict=record)
    assert calls == []  # both fit: nothing evicted
    store.promote("c", after_evict=record)  # 3 x 1 MB > 2.5 MB: a goes
    assert calls == [["b"]]  # once, after a was evicted and before c was written
    assert store.tier("c") is Tier.warm
