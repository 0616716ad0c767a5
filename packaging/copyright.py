"""Writes debian/copyright (machine-readable format 1.0) for the built package tree:
the header and dockgate's own paragraphs from packaging/debian/copyright.in, then
one Files paragraph per bundled Python distribution, from its own metadata
(License-Expression, else License, else the trove classifiers) with the text of
every licence file its .dist-info carries (for Pillow and the others that bundle
native libraries, those files hold the libraries' licences too).

Usage (scripts/build-deb): python3 packaging/copyright.py STAGE copyright.in [copyright-native.in] > copyright
"""

from __future__ import annotations

import re
import sys
from email.parser import HeaderParser
from pathlib import Path

LIB = "usr/lib/dockgate"
#: trove classifier -> DEP-5 short name, for distributions that declare nothing else
CLASSIFIERS = {
    "Apache Software License": "Apache-2.0", "MIT License": "Expat", "BSD License": "BSD-3-clause",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "Python Software Foundation License": "PSF-2.0",
    "ISC License (ISCL)": "ISC", "Public Domain": "public-domain",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL-2.1+",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2+",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2+",
}
#: SPDX identifiers written the way the copyright format spells them
SPDX = {"MIT": "Expat", "BSD-3-Clause": "BSD-3-clause", "BSD-2-Clause": "BSD-2-clause",
        "LGPL-2.1-or-later": "LGPL-2.1+", "LGPL-2.1-only": "LGPL-2.1", "LGPL-3.0-or-later": "LGPL-3+",
        "Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0", "EPL-2.0": "EPL-2.0", "ISC": "ISC",
        "PSF-2.0": "PSF-2.0", "BSD-1-Clause": "BSD-1-clause", "Unlicense": "Unlicense"}
#: well-known licence names pip metadata uses in the free-text License field
ALIASES = {"mit": "Expat", "mit license": "Expat", "apache 2.0": "Apache-2.0", "apache-2.0": "Apache-2.0",
           "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
           "bsd": "BSD-3-clause", "bsd-3-clause": "BSD-3-clause", "bsd license": "BSD-3-clause",
           "mpl-2.0": "MPL-2.0", "mpl 2.0": "MPL-2.0", "isc": "ISC", "psf": "PSF-2.0",
           "lgpl-2.1-or-later": "LGPL-2.1+", "lgplv2+": "LGPL-2+", "lgpl": "LGPL-2.1+",
           "epl-2.0 or edl-1.0": "EPL-2.0 or BSD-3-clause", "public domain": "public-domain",
           # python-dateutil: its LICENSE puts changes since 2017 under Apache-2.0, the rest under BSD-3-Clause
           "dual license": "Apache-2.0 and BSD-3-clause"}


def short_name(meta: dict[str, str], classifiers: list[str]) -> str:
    expr = meta.get("License-Expression", "").strip()
    if expr:
        words = re.split(r"(\s+(?:OR|AND|WITH)\s+|[()])", expr)
        return "".join(SPDX.get(w, w.lower() if re.fullmatch(r"\s+(OR|AND|WITH)\s+", w) else w)
                       for w in words).replace("(", "").replace(")", "")
    text = meta.get("License", "").strip()
    if text and "\n" not in text and len(text) < 60:
        return ALIASES.get(text.lower(), text.replace(" ", "-"))
    names = [CLASSIFIERS[c.split(" :: ")[-1]] for c in classifiers
             if c.startswith("License ::") and c.split(" :: ")[-1] in CLASSIFIERS]
    if names:
        return " or ".join(dict.fromkeys(names))
    raise SystemExit(f"copyright.py: {meta.get('Name')} {meta.get('Version')}: no licence in its metadata;"
                     " add it to packaging/debian/copyright.in by hand")


#: full licence texts Debian keeps in /usr/share/common-licenses: a reference replaces them
#: (lintian: copyright-file-contains-full-apache-2-license, -full-gpl-license, old-fsf-address)
COMMON = [
    (re.compile(r"Apache License\s+Version 2\.0, January 2004", re.I), "Apache-2.0"),
    (re.compile(r"GNU LESSER GENERAL PUBLIC LICENSE\s+Version 2\.1", re.I), "LGPL-2.1"),
    (re.compile(r"GNU LESSER GENERAL PUBLIC LICENSE\s+Version 3", re.I), "LGPL-3"),
    (re.compile(r"GNU (LIBRARY )?GENERAL PUBLIC LICENSE\s+Version 2, June 1991", re.I), "GPL-2"),
    (re.compile(r"GNU GENERAL PUBLIC LICENSE\s+Version 3", re.I), "GPL-3"),
    (re.compile(r"Mozilla Public License,? (Version|version) 2\.0"), "MPL-2.0"),
    (re.compile(r"MOZILLA PUBLIC LICENSE\s+Version 1\.1"), "MPL-1.1"),
]


def shorten(text: str) -> str:
    """A licence file that holds a licence Debian ships in full becomes a pointer to it (the
    notices before the licence's own title stay)."""
    for pattern, name in COMMON:
        m = pattern.search(text)
        if m:
            head = text[:m.start()].rstrip()
            head = "\n".join(line for line in head.splitlines() if not re.fullmatch(r"[\s=*-]*", line))
            ref = f"On Debian systems, the full text of the {name} licence is in /usr/share/common-licenses/{name}."
            return (head + "\n\n" + ref) if head else ref
    return text


def indent(text: str) -> str:
    out = []
    for raw in text.replace("\t", "    ").splitlines():
        line = raw.rstrip()
        out.append(" " + line if line else " .")
    while out and out[-1] == " .":
        out.pop()
    return "\n".join(out)


#: lines of licence texts that name the licence's own authors or a template, not the software's
NOT_HOLDERS = re.compile(r"Free Software Foundation|name of author|<year>|\[yyyy\]|\{yyyy\}|notice|holder", re.I)


def copyrights(meta: dict[str, str], texts: list[str]) -> list[str]:
    found: list[str] = []
    for text in texts:
        for line in text.splitlines():
            m = re.match(r"\s*Copyright\s*(?:\(c\)|©)?\s*((?:\d{4}|[A-Z]).*)", line)
            if m and not NOT_HOLDERS.search(line) and len(m[1]) < 120 and m[1] not in found:
                found.append(m[1].strip().rstrip("."))
    if not found:
        who = meta.get("Author") or meta.get("Maintainer") or ""
        email = meta.get("Author-email") or meta.get("Maintainer-email") or ""
        who = who or ", ".join(re.sub(r"\s*<[^>]*>", "", p).strip().strip('"') for p in email.split(","))
        found.append(who.strip() or f"the {meta['Name']} authors")
    return found[:12]


def paragraphs(stage: Path) -> list[str]:
    dists: dict[str, dict[str, object]] = {}
    for info in sorted(stage.glob(f"{LIB}/python*/*.dist-info")):
        meta_raw = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        meta = {k: str(v) for k, v in meta_raw.items()}
        key = f"{meta['Name']} {meta['Version']}"
        tops = {line.split(",")[0].split("/")[0] for line in (info / "RECORD").read_text().splitlines() if line}
        tops = {t for t in tops if t and not t.startswith("..") and t != "__pycache__"}
        rel = info.parent.relative_to(stage)
        d = dists.setdefault(key, {"meta": meta, "classifiers": meta_raw.get_all("Classifier") or [],
                                   "files": [], "licences": {}})
        d["files"] += [f"{rel}/{t}" + ("/*" if (info.parent / t).is_dir() else "") for t in sorted(tops)]  # type: ignore[operator]
        # the licence files anywhere in the distribution (pymediainfo keeps libmediainfo's beside it)
        record = [line.split(",")[0] for line in (info / "RECORD").read_text().splitlines() if line]
        lic_files = sorted(info.parent / r for r in record if (info.parent / r).is_file()
                           and re.match(r"(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT)", Path(r).name, re.I))
        for p in lic_files:
            d["licences"].setdefault(p.name, p.read_text(encoding="utf-8", errors="replace"))  # type: ignore[attr-defined]
    out = []
    for key, d in sorted(dists.items(), key=lambda kv: kv[0].lower()):
        meta = d["meta"]  # type: ignore[assignment]
        texts = list(d["licences"].values())  # type: ignore[attr-defined]
        name = short_name(meta, d["classifiers"])  # type: ignore[arg-type]
        body = "\n .\n".join(indent(shorten(t)) for t in texts) if texts else (
            " The licence named above; its .dist-info carries no licence file.")
        cr = copyrights(meta, texts)
        out.append("\n".join([
            "Files: " + "\n ".join(d["files"]),  # type: ignore[arg-type]
            "Copyright: " + "\n ".join(cr),
            f"License: {name}",
            body,
            f"Comment: {key}, bundled as a wheel; the licence text is its .dist-info's.",
        ]))
    return out


def main() -> None:
    stage, header = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
    # paragraphs that must come after the generated ones (the last matching Files paragraph applies)
    tail = Path(sys.argv[3]).read_text() if len(sys.argv) > 3 else ""
    sys.stdout.write(header.rstrip("\n") + "\n\n" + "\n\n".join(paragraphs(stage)) + "\n"
                     + ("\n" + tail.rstrip("\n") + "\n" if tail else ""))


if __name__ == "__main__":
    main()
