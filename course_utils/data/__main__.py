"""Command line: `python -m course_utils.data {status, download NAME..., verify, bundle OUT.zip, unbundle FILE}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_utils.data import bundle, hippocampus, medmnist_data
from course_utils.data.catalogue import COURSE_MEDMNIST, course_status, format_status
from course_utils.data.errors import DataError, describe_os_error


def _download(names: list[str], size: int | None) -> int:
    """Fetch each named dataset; 'all' means every course dataset."""
    targets: list[tuple[str, int | None]] = []
    for name in names:
        key = name.lower()
        if key == "all":
            targets += list(COURSE_MEDMNIST) + [("hippocampus", None)]
        elif key in ("hippocampus", "task04_hippocampus", "msd_hippocampus"):
            targets.append(("hippocampus", None))
        elif key == "mni152":
            print("mni152: ships inside nilearn, nothing to download.")
        else:
            flag, parsed = bundle._flag_and_size(f"{key}.npz")
            targets.append((flag, parsed if size is None else size))
    failures = 0
    for flag, flag_size in targets:
        try:
            if flag == "hippocampus":
                path = hippocampus.ensure_hippocampus(download=True)
            else:
                path = medmnist_data.ensure_file(flag, flag_size, download=True)
            print(f"ok      {flag}{'' if flag_size is None else f' ({flag_size} px)'}: {path}")
        except DataError as error:
            failures += 1
            print(f"FAILED  {flag}: {error}", file=sys.stderr)
        except OSError as error:
            failures += 1
            print(f"FAILED  {flag}: {describe_os_error(error, 'download ' + flag)}", file=sys.stderr)
    return 1 if failures else 0


def _positive_int(text: str) -> int:
    """argparse type: a whole number of pixels above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. --size 64)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--size must be a positive number of pixels (28, 64, 128, 224), got {value}")
    return value


def _verify() -> int:
    """Print the status table; 1 if any copy is corrupt or unreadable."""
    rows = course_status()
    print(format_status(rows))
    bad = [row for row in rows if row.status in ("corrupt", "unreadable")]
    if bad:
        where = "; ".join(f"{row.name} at {row.location} ({row.problem or row.status})" for row in bad)
        print(f"\nCorrupt: {where}. Delete them and download again "
              "(`python -m course_utils.data download NAME`).", file=sys.stderr)
        return 1
    print("\nEverything present is intact.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="every course dataset: present / missing / corrupt, size, licence")
    get = commands.add_parser("download", help="fetch datasets (MedMNIST flag[_size], hippocampus, all)")
    get.add_argument("names", nargs="+")
    get.add_argument("--size", type=_positive_int, default=None, help="MedMNIST image size (28, 64, 128, 224)")
    commands.add_parser("verify", help="check every present file; exit 1 if anything is corrupt")
    pack = commands.add_parser("bundle", help="pack the verified data into one zip for an offline room")
    pack.add_argument("out", type=Path)
    unpack = commands.add_parser("unbundle", help="check and install a bundle made by `bundle`")
    unpack.add_argument("file", type=Path)
    unpack.add_argument("--into", type=Path, default=None, help="data folder (default: the first writable one)")
    args = parser.parse_args(argv)

    try:
        if args.command == "status":
            print(format_status(course_status()))
            return 0
        if args.command == "download":
            return _download(args.names, args.size)
        if args.command == "verify":
            return _verify()
        if args.command == "bundle":
            manifest = bundle.make_bundle(args.out)
            print(f"Wrote {args.out} with {len(manifest)} files. In the room: "
                  f"`python -m course_utils.data unbundle {args.out.name}`.")
            return 0
        installed = bundle.unpack_bundle(args.file, args.into)
        print("Installed: " + ", ".join(installed))
        return 0
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # permissions, a file where a folder belongs, a full disk ...
        print(f"error: {describe_os_error(error, args.command)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
