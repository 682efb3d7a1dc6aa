"""Static checks of the user documentation (docs/, examples/, the README's Documentation section).

    check_docs.py            (ctest sets KNN_SOURCE_DIR)

- every relative link (and #anchor into a page) of README.md, docs/**/*.md and examples/**/*.md
  resolves;
- the hyperparameter table of docs/hyperparameters.md has exactly the rows of the table in
  runner/src/train/hyperparams.c, with the same required flags and defaults;
- every docs page with shell blocks to run is registered as a docs.<page> test;
- README.md links docs/ and examples/ from its Documentation section.
"""
import glob
import os
import re
import sys

SRC = os.environ["KNN_SOURCE_DIR"]
failures = []


def check(ok, what):
    if not ok:
        print("FAIL  " + what)
        failures.append(what)


def anchors(path):
    """GitHub's anchors of a page's headings."""
    out = set()
    for line in open(path):
        m = re.match(r"^#+\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def check_links():
    pages = [os.path.join(SRC, "README.md")] + glob.glob(os.path.join(SRC, "docs", "**", "*.md"), recursive=True) \
        + glob.glob(os.path.join(SRC, "examples", "**", "*.md"), recursive=True)
    count = 0
    for page in pages:
        text = open(page).read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # not inside code blocks
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            rel = os.path.relpath(page, SRC)
            count += 1
            check(os.path.exists(full), f"{rel}: link {target} resolves")
            if anchor and os.path.isfile(full) and full.endswith(".md"):
                check(anchor in anchors(full), f"{rel}: anchor #{anchor} exists in {os.path.relpath(full, SRC)}")
    print(f"ok    {count} relative links in {len(pages)} pages checked")


def check_hyperparameters():
    code = open(os.path.join(SRC, "runner", "src", "train", "hyperparams.c")).read()
    rows = re.findall(r'\[KNN_HP_\w+\]\s*=\s*\{"(\w+)",\s*(\d),\s*(NULL|"[^"]*")', code)
    check(len(rows) >= 11, f"hyperparams.c: the table parses ({len(rows)} rows)")
    documented = {}
    for line in open(os.path.join(SRC, "docs", "hyperparameters.md")):
        m = re.match(r"^\|\s*`(\w+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|", line)
        if m:
            documented[m.group(1)] = (m.group(2).strip(), m.group(3).strip().strip("`"))
    platform = {name for name, required, default in rows if name.startswith("_") or name == "epochs"}
    page = open(os.path.join(SRC, "docs", "hyperparameters.md")).read()
    for name, required, default in rows:
        if name in platform:
            check(f"`{name}`" in page, f"docs/hyperparameters.md names the platform key {name}")
            continue
        check(name in documented, f"docs/hyperparameters.md has a row for {name}")
        if name not in documented:
            continue
        doc_required, doc_default = documented[name]
        check((doc_required == "yes") == (required == "1"),
              f"{name}: required is '{doc_required}' in the docs, {required} in hyperparams.c")
        want = default.strip('"') if default != "NULL" else ""
        if name == "dimension_reduction_type":
            want = want or "none"  # documented as "none" (no reduction)
        check(doc_default == want, f"{name}: default '{doc_default}' in the docs, '{want}' in hyperparams.c")
    extra = set(documented) - {r[0] for r in rows}
    check(not extra, f"docs/hyperparameters.md documents no unknown hyperparameter ({sorted(extra)})")
    print(f"ok    hyperparameter table: {len(documented)} rows against hyperparams.c")


def check_registered():
    cmake = open(os.path.join(SRC, "tests", "examples", "CMakeLists.txt")).read()
    m = re.search(r"foreach\(page ([^)]*)\)", cmake)
    registered = set(m.group(1).split()) if m else set()
    for page in glob.glob(os.path.join(SRC, "docs", "*.md")):
        lines = open(page).read().splitlines()
        runnable = any(line.strip() == "```sh" and not (i and lines[i - 1].startswith("<!-- not run"))
                       for i, line in enumerate(lines))
        name = os.path.basename(page)[:-3]
        if runnable:
            check(name in registered, f"docs/{name}.md has shell blocks to run: it is a docs.{name} test")
    print(f"ok    pages run by tests: {sorted(registered)}")


def check_readme():
    text = open(os.path.join(SRC, "README.md")).read()
    m = re.search(r"^## Documentation\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    check(m is not None, "README.md has a Documentation section")
    if m:
        check("(docs/README.md)" in m.group(1) and "(examples/README.md)" in m.group(1),
              "README.md's Documentation section links docs/README.md and examples/README.md")


def main():
    check_links()
    check_hyperparameters()
    check_registered()
    check_readme()
    if failures:
        sys.exit(f"check_docs: {len(failures)} problem(s)")
    print("check_docs: all checks passed")


if __name__ == "__main__":
    main()
