"""Stamp "Open in Colab" badges and the Colab bootstrap into the README and the course notebooks.

The repository URL lives in one place, `[project.urls] Repository` in pyproject.toml; this script writes it
everywhere else. It is idempotent: run it again after changing the URL or the bootstrap, and it rewrites the
same places (a second run changes nothing).

Usage: `.venv/bin/python scripts/stamp_colab.py [notebooks/NN_name.ipynb ...]` (no arguments: the README and
every course notebook; with arguments: only the named notebooks). `--check` changes nothing and exits with
status 1 when a file is not stamped as it would be.

What it writes:
- in each notebook's title cell, a badge line under the `# ` title that opens the notebook on Colab;
- in each notebook's Setup cell, the block between `BOOTSTRAP_BEGIN` and `BOOTSTRAP_END`: when `course_utils`
  is not importable and the notebook runs on Colab outside a clone, it says what it will do, clones the
  repository (shallow) into `./course`, installs it with pip and puts it on `sys.path`;
- in README.md, the block between `README_BEGIN` and `README_END`: the clone command and one badge per notebook;
- in CITATION.cff, the `repository-code:` line.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"  # the branch Colab badges open
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n?", re.M)
BOOTSTRAP_BEGIN = "# course bootstrap (written by scripts/stamp_colab.py from pyproject.toml; edit it there)"
BOOTSTRAP_END = "# end of course bootstrap"
README_BEGIN = "<!-- stamp_colab: begin (written by scripts/stamp_colab.py from pyproject.toml) -->"
README_END = "<!-- stamp_colab: end -->"
# the Setup cell imports these itself (isort order among its other imports); the block only uses them
BOOTSTRAP_IMPORTS = ("import importlib.util", "import pathlib", "import subprocess", "import sys")
# the unstamped bootstrap the notebooks had before this script: replaced on the first run
_LEGACY_START = 'if importlib.util.find_spec("course_utils") is None:'
_LEGACY_END = "    sys.path.insert(0, str(repo))\n"

BOOTSTRAP_TEMPLATE = '''{begin}
course_repository = "{url}"
if importlib.util.find_spec("course_utils") is None:  # not installed: find the clone (or, on Colab, make one)
    here = pathlib.Path.cwd()
    repo = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), None)
    if repo is None and importlib.util.find_spec("google") and importlib.util.find_spec("google.colab"):
        repo = here / "course"
        if not (repo / "pyproject.toml").is_file():
            print(f"Colab: cloning {{course_repository}} (latest commit only) into {{repo}} ...", flush=True)
            subprocess.run(["git", "clone", "--depth", "1", course_repository, str(repo)], check=True)
    if repo is None:
        raise ModuleNotFoundError(
            "course_utils is not installed. Open this notebook from the notebooks/ folder of a clone of "
            f"{{course_repository}}, or run `pip install -e .` in your clone."
        )
    print(f"Installing course_utils from {{repo}} with pip (on Colab about a minute) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(repo)], check=True)
    sys.path.insert(0, str(repo))
{end}
'''


class StampError(ValueError):
    """A file does not have the place the stamp goes (no title, no Setup cell, a missing import)."""


def repository_url(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The course repository's URL: `[project.urls] Repository` in pyproject.toml, without a trailing slash."""
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("urls", {})
    if "Repository" not in urls:
        raise StampError(f"{pyproject} has no `Repository` entry under [project.urls]")
    return urls["Repository"].rstrip("/")


def colab_url(url: str, notebook_name: str, branch: str = BRANCH) -> str:
    """The address that opens `notebooks/<notebook_name>` of the GitHub repository `url` on Colab."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if not match:
        raise StampError(f"Colab opens notebooks from GitHub only; the repository URL is {url!r}")
    owner, name = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/notebooks/{notebook_name}"


def badge(url: str, notebook_name: str) -> str:
    """One Markdown badge line that opens `notebook_name` on Colab."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(url, notebook_name)})"


def bootstrap_block(url: str) -> str:
    """The Setup cell's bootstrap block for the repository `url` (ends with a newline)."""
    return BOOTSTRAP_TEMPLATE.format(begin=BOOTSTRAP_BEGIN, end=BOOTSTRAP_END, url=url)


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def setup_cell_index(notebook: dict) -> int:
    """The index of the code cell right after the `## Setup` heading."""
    for index, cell in enumerate(notebook["cells"][:-1]):
        if cell["cell_type"] == "markdown" and re.search(r"^## Setup\b", _source(cell), re.M):
            if notebook["cells"][index + 1]["cell_type"] != "code":
                raise StampError("the `## Setup` heading is not followed by a code cell")
            return index + 1
    raise StampError("no `## Setup` heading")


def stamp_title(text: str, url: str, notebook_name: str) -> str:
    """The title cell's text with exactly one badge line, right under the `# ` title line."""
    if not text.startswith("# "):
        raise StampError("the first cell does not start with a `# ` title")
    text = BADGE_RE.sub("", text)
    title, _, rest = text.partition("\n")
    return f"{title}\n\n{badge(url, notebook_name)}\n\n{rest.lstrip(chr(10))}".rstrip("\n")


def stamp_setup(text: str, url: str) -> str:
    """The Setup cell's code with the current bootstrap block in place of the old one (or of the legacy code)."""
    missing = [line for line in BOOTSTRAP_IMPORTS if not re.search(rf"^{re.escape(line)}$", text, re.M)]
    if missing:
        raise StampError(f"the Setup cell must import {', '.join(missing)} (the bootstrap uses them)")
    block = bootstrap_block(url)
    if BOOTSTRAP_BEGIN in text:
        start = text.index(BOOTSTRAP_BEGIN)
        end = text.index(BOOTSTRAP_END, start) + len(BOOTSTRAP_END)
        end += text[end:].startswith("\n")
        while text[end:].startswith(BOOTSTRAP_END):  # stray copies of the end line (an old merge) go too
            end += len(BOOTSTRAP_END) + text[end + len(BOOTSTRAP_END):].startswith("\n")
    elif _LEGACY_START in text:
        start = text.index(_LEGACY_START)
        end = text.index(_LEGACY_END, start) + len(_LEGACY_END)
    else:  # first stamp of a Setup cell without a bootstrap: after its leading block of imports
        lines = text.splitlines(keepends=True)
        count = next((i for i, line in enumerate(lines) if not line.startswith(("import ", "from "))), len(lines))
        start = end = sum(len(line) for line in lines[:count])
        block = "\n" + block + "\n"
    return text[:start] + block + text[end:]


def stamp_notebook(notebook: dict, url: str, notebook_name: str) -> dict:
    """`notebook` (nbformat JSON as a dict) with its badge and bootstrap stamped; changed in place."""
    title_cell = notebook["cells"][0]
    if title_cell["cell_type"] != "markdown":
        raise StampError("the first cell is not the Markdown title")
    _set_source(title_cell, stamp_title(_source(title_cell), url, notebook_name))
    setup = notebook["cells"][setup_cell_index(notebook)]
    _set_source(setup, stamp_setup(_source(setup), url))
    return notebook


def readme_block(url: str, notebook_names: list[str]) -> str:
    """The README's Colab block: the clone command and one badge per notebook."""
    rows = "\n".join(f"| `{Path(name).stem}` | {badge(url, name)} |" for name in notebook_names)
    return (
        f"{README_BEGIN}\n"
        "Open a notebook straight from GitHub (its Setup cell clones and installs the course when it runs on\n"
        "Colab), or clone it yourself in a Colab cell:\n\n"
        "```bash\n"
        f"!git clone --depth 1 {url} course\n"
        "%cd course/notebooks\n"
        "```\n\n"
        "| notebook | open on Colab |\n|---|---|\n"
        f"{rows}\n"
        f"{README_END}"
    )


def stamp_readme(text: str, url: str, notebook_names: list[str]) -> str:
    """The README with the Colab block replaced (it must hold the begin and end markers)."""
    if README_BEGIN not in text or README_END not in text:
        raise StampError(f"README.md lacks the markers {README_BEGIN!r} ... {README_END!r}")
    start = text.index(README_BEGIN)
    end = text.index(README_END, start) + len(README_END)
    return text[:start] + readme_block(url, notebook_names) + text[end:]


def stamp_citation(text: str, url: str) -> str:
    """CITATION.cff with its `repository-code:` line naming `url` (the line must exist)."""
    if not re.search(r"^repository-code: .*$", text, re.M):
        raise StampError("CITATION.cff lacks a `repository-code:` line")
    return re.sub(r"^repository-code: .*$", f'repository-code: "{url}"', text, count=1, flags=re.M)


def dump_notebook(notebook: dict) -> str:
    """The notebook as the course stores it (sorted keys, one-space indent, UTF-8)."""
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def course_notebook_paths(root: Path = REPO_ROOT) -> list[Path]:
    """The numbered course notebooks, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def stamped_files(paths: list[Path], root: Path = REPO_ROOT) -> dict[Path, str]:
    """Each file to stamp with its stamped text: the named notebooks, or README, CITATION.cff and every notebook."""
    url = repository_url(root / "pyproject.toml")
    targets = {}
    if not paths:
        readme = root / "README.md"
        names = [p.name for p in course_notebook_paths(root)]
        targets[readme] = stamp_readme(readme.read_text(encoding="utf-8"), url, names)
        citation = root / "CITATION.cff"
        targets[citation] = stamp_citation(citation.read_text(encoding="utf-8"), url)
    for path in paths or course_notebook_paths(root):
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
            targets[path] = dump_notebook(stamp_notebook(notebook, url, path.name))
        except StampError as error:
            raise StampError(f"{path}: {error}") from None
    return targets


def main(argv: list[str]) -> int:
    """Stamp (or with `--check`, only compare) the README and the notebooks; 1 if `--check` finds a stale file."""
    check = "--check" in argv
    paths = [Path(a).resolve() for a in argv if a != "--check"]
    stale = []
    for path, text in stamped_files(paths).items():
        if path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
            print(f"stamped {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    if check and stale:
        print("not stamped (run scripts/stamp_colab.py): " + ", ".join(p.name for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
