# ruff: noqa: RUF001 - Chinese text takes full-width punctuation
"""The tag files a person reads: 文件目录.XML (the catalogue, DA/T style)
and 说明文件.txt (what the package is and how to check it).

The catalogue's elements follow the DA/T 63-2017 audio/video metadata names
as we read them (顺序号, 档号, 题名, 责任者, 日期, 时间长度, 计算机文件名,
计算机文件大小, 格式名称, 数字摘要); ``docs/casefile.md`` lists the mapping
from manifest fields, so an archive that reads the standard differently can
remap it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from gateway.casefile.source import CaseEvidence, ClipEvidence

CATALOGUE = "文件目录.XML"
README = "说明文件.txt"
FOUR_PROPERTIES = "四性检测报告.json"


def archival_code(selection: str, n: int) -> str:
    return f"{selection}-{n:04d}"


def title(c: ClipEvidence) -> str:
    who = c.doc.get("collector") or {}
    when = (c.doc.get("capture_time") or {}).get("utc") or "?"
    return f"{who.get('name') or who.get('officer') or '?'} 执法记录仪音像记录 {when}"


def responsible(c: ClipEvidence) -> str:
    who = c.doc.get("collector") or {}
    parts = [who.get("name"), f"警号 {who['officer']}" if who.get("officer") else None, who.get("unit")]
    return "，".join(p for p in parts if p)


def catalogue_xml(ev: CaseEvidence) -> bytes:
    root = ET.Element("文件目录", {"案件编号": ev.selection.case or "", "元数据方案": "DA/T 63-2017",
                                 "生成时间": datetime.now(UTC).isoformat(timespec="seconds")})
    for n, c in enumerate(ev.clips, start=1):
        clip = c.doc.get("clip") or {}
        container = clip.get("container") or {}
        f = ET.SubElement(root, "文件")
        fields: list[tuple[str, object, dict[str, str]]] = [
            ("顺序号", n, {}),
            ("档号", archival_code(ev.selection.describe(), n), {}),
            ("题名", title(c), {}),
            ("责任者", responsible(c), {}),
            ("日期", (c.doc.get("capture_time") or {}).get("utc"), {"来源": "capture_time.utc"}),
            ("时间长度", container.get("duration_s"), {"单位": "秒"}),
            ("计算机文件名", f"data/archive/{c.key}", {}),
            ("计算机文件大小", clip.get("size"), {"单位": "字节"}),
            ("格式名称", container.get("format"), {}),
            ("数字摘要", clip.get("sha256"), {"算法": "SHA-256"}),
        ]
        if clip.get("sm3"):
            fields.append(("数字摘要", clip["sm3"], {"算法": "SM3"}))
        fields += [
            ("案件编号", c.case_number, {}),
            ("证明对象", c.latest("proof_object"), {}),
            ("采集地点", (c.doc.get("capture_place") or {}).get("text"), {}),
            ("设备编号", (c.doc.get("recorder") or {}).get("serial"), {}),
            ("采集站", c.station, {}),
            ("不完整", "是" if clip.get("partial") else "否", {}),
        ]
        for tag, value, attrs in fields:
            e = ET.SubElement(f, tag, attrs)
            e.text = "" if value is None else str(value)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def readme_text(ev: CaseEvidence, key_ids: list[str]) -> str:
    what = (f"案件 {ev.selection.case}" if ev.selection.case
            else f"警号 {ev.selection.officer or '（任意）'} 在所选时段内的音像记录")
    lines = [
        f"说明文件：{what} 的电子档案包（BagIt，RFC 8493），由 dockgate 从档案库导出。",
        "",
        f"音像记录 {len(ev.clips)} 条，来自采集站 {', '.join(ev.stations) or '-'}。",
        "data/archive/ 与档案库的目录结构一致：每条音像记录旁有签名的清单（.manifest.json 与 .sig）",
        "及其修正件（.amendment-N.json）；custody/ 下为涉及这些记录的监管链日志段及覆盖它们的签名检查点。",
        "data/keys/ 为采集站公钥，其 SHA-256（DER）即清单中的 key_id，应与公布的密钥编号核对。",
        "",
        "文件目录.XML：按 DA/T 63-2017 元数据元素列出每条记录；四性检测报告.json：导出时的真实性、",
        "完整性、可用性、安全性检测结果；监管链报告：每条记录的监管链（HTML 与 PDF）。",
        "",
        "如何核验：",
        "  bagit.py --validate 本目录                  （包内每个文件的 SHA-256）",
        "  dockgate verify --bag 本目录 [--pubkey 公钥]  （签名、哈希、监管链、可用性、安全性）",
        "  不用 dockgate：见 docs/verify.md 中的 sha256sum 与 OpenSSL 命令，对 data/archive/ 中任一记录执行。",
        "",
        "采集站密钥编号：",
        *[f"  {k}" for k in key_ids],
        "",
        "This is a BagIt package of body-worn camera evidence exported by dockgate; see docs/casefile.md.",
    ]
    return "\n".join(lines) + "\n"
