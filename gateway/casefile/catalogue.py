# ruff: noqa: RUF001 - Chinese text takes full-width punctuation
"""The tag files a person reads: 文件目录.XML (the catalogue, DA/T style)
and 说明文件.txt (what the package is and how to check it).

The catalogue's elements follow the DA/T 63-2017 audio/video metadata names
as we read them (顺序号, 档号, 题名, 责任者, 日期, 时间长度, 计算机文件名,
计算机文件大小, 格式名称, 数字摘要) and the archival elements every file
carries (全宗号, 年度, 保管期限, 密级); ``docs/casefile.md`` lists the mapping
from manifest fields, so an archive that reads the standard differently can
remap it.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, tzinfo

from gateway.casefile.source import CaseEvidence, ClipEvidence
from gateway.config import RetentionConfig
from gateway.evidence.gm import SM2_PUB_SUFFIX
from gateway.evidence.retention import class_for, days_of

CATALOGUE = "文件目录.XML"
CATALOGUE_CSV = "文件目录.CSV"
#: the hand-check commands in 说明文件.txt sit between these lines
MANUAL_BEGIN = "----- 命令 / commands -----"
MANUAL_END = "----- 命令结束 / end of commands -----"
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


Row = list[tuple[str, object, dict[str, str]]]
#: the columns the CSV copy has, in order (each element's first occurrence; 数字摘要 also with its algorithm)
_CSV_ORDER = ("顺序号", "档号", "全宗号", "年度", "保管期限", "密级", "题名", "责任者", "日期", "时间长度",
              "计算机文件名", "计算机文件大小", "格式名称", "数字摘要(SHA-256)", "数字摘要(SM3)", "案件编号",
              "证明对象", "采集地点", "设备编号", "采集站", "不完整")


def local_time(utc: str | None, tz: tzinfo | None = None) -> str | None:
    """An ISO UTC time (``...Z``) as the clerk's local time with its zone:
    ``2024-03-01 16:30:15 CST (UTC+08:00)``; None for none."""
    if not utc:
        return None
    try:
        t = datetime.fromisoformat(str(utc).replace("Z", "+00:00"))
    except ValueError:
        return str(utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    local = t.astimezone(tz)
    off = local.strftime("%z")
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {local.tzname()} (UTC{off[:3]}:{off[3:]})"


def retention_period(cfg: RetentionConfig, c: ClipEvidence) -> tuple[str, str]:
    """(保管期限 as the archive writes it: 永久 or 定期N年, the retention class)."""
    cls = class_for(cfg, c.latest("category"), c.important, c.case_number)
    if cfg.classes[cls] == "permanent":
        return "永久", cls
    days = days_of(cfg, cls)
    return (f"定期{days // 365}年" if days % 365 == 0 else f"定期{days}天"), cls


def catalogue_rows(ev: CaseEvidence, retention: RetentionConfig | None = None, fonds: str = "",
                   classification: str = "内部", tz: tzinfo | None = None) -> list[Row]:
    """Each clip's catalogue elements (DA/T 63 names), as the XML and the CSV carry them."""
    retention = retention or RetentionConfig()
    rows = []
    for n, c in enumerate(ev.clips, start=1):
        clip = c.doc.get("clip") or {}
        container = clip.get("container") or {}
        utc = (c.doc.get("capture_time") or {}).get("utc")
        local = local_time(utc, tz)
        period, cls = retention_period(retention, c)
        fields: Row = [
            ("顺序号", n, {}),
            ("档号", archival_code(ev.selection.describe(), n), {}),
            ("全宗号", fonds, {}),
            ("年度", local[:4] if local else None, {}),
            ("保管期限", period, {"保留类别": cls}),
            ("密级", classification, {}),
            ("题名", title(c), {}),
            ("责任者", responsible(c), {}),
            ("日期", utc, {"来源": "capture_time.utc", "当地时间": local or ""}),
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
        rows.append(fields)
    return rows


def catalogue_xml(ev: CaseEvidence, rows: list[Row] | None = None) -> bytes:
    root = ET.Element("文件目录", {"案件编号": ev.selection.case or "", "元数据方案": "DA/T 63-2017",
                                 "生成时间": datetime.now(UTC).isoformat(timespec="seconds")})
    for fields in catalogue_rows(ev) if rows is None else rows:
        f = ET.SubElement(root, "文件")
        for tag, value, attrs in fields:
            e = ET.SubElement(f, tag, attrs)
            e.text = "" if value is None else str(value)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def catalogue_csv(rows: list[Row]) -> bytes:
    """The catalogue as CSV (UTF-8 with a byte-order mark, so a spreadsheet
    opens the Chinese as Chinese), one line per clip."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(_CSV_ORDER)
    for fields in rows:
        cells: dict[str, str] = {}
        for tag, value, attrs in fields:
            name = f"{tag}({attrs['算法']})" if tag == "数字摘要" else tag
            cells.setdefault(name, "" if value is None else str(value))
        w.writerow([cells.get(c, "") for c in _CSV_ORDER])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def manual_commands(ev: CaseEvidence) -> list[str]:
    """Shell lines that check the first clip of the bag by hand, from the
    bag's top folder, with sha256sum and OpenSSL 3 only: SHA-256 and the
    Ed25519 signature of its manifest and, for a 国密 clip, SM3 and the SM2
    signature (GM/T 0009 distinguishing ID 1234567812345678). Each pair of
    hashes printed must be equal; each signature check prints its OK."""
    c = ev.clips[0]
    clip = f"data/archive/{c.key}"
    lines = [
        f"CLIP='{clip}'",
        f"PUB='data/keys/{c.doc.get('key_id')}.pub.pem'",
        "sha256sum \"$CLIP\" | cut -d' ' -f1",
        "grep -o '\"sha256\":\"[0-9a-f]\\{64\\}\"' \"$CLIP.manifest.json\" | head -n1 | cut -d'\"' -f4",
        "openssl pkey -pubin -in \"$PUB\" -outform DER | sha256sum | cut -d' ' -f1",
        "grep -o '\"key_id\":\"[0-9a-f]\\{64\\}\"' \"$CLIP.manifest.json\" | cut -d'\"' -f4",
        "openssl pkeyutl -verify -pubin -inkey \"$PUB\" -rawin -in \"$CLIP.manifest.json\" "
        "-sigfile \"$CLIP.manifest.json.sig\"",
    ]
    if c.doc.get("sm2_key_id"):
        lines += [
            f"SM2PUB='data/keys/{c.doc['sm2_key_id']}{SM2_PUB_SUFFIX}'",
            "openssl dgst -sm3 -r \"$CLIP\" | cut -d' ' -f1",
            "grep -o '\"sm3\":\"[0-9a-f]\\{64\\}\"' \"$CLIP.manifest.json\" | cut -d'\"' -f4",
            "openssl pkey -pubin -in \"$SM2PUB\" -outform DER | sha256sum | cut -d' ' -f1",
            "grep -o '\"sm2_key_id\":\"[0-9a-f]\\{64\\}\"' \"$CLIP.manifest.json\" | cut -d'\"' -f4",
            "openssl dgst -sm3 -verify \"$SM2PUB\" -sigopt distid:1234567812345678 "
            "-signature \"$CLIP.manifest.json.sm2.sig\" \"$CLIP.manifest.json\"",
        ]
    return lines


def readme_text(ev: CaseEvidence, key_ids: list[str], sm2_ids: list[str] | None = None) -> str:
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
        "文件目录.XML：按 DA/T 63-2017 元数据元素列出每条记录（含全宗号、年度、保管期限、密级），",
        "文件目录.CSV 为其表格副本；四性检测报告.json：导出时的真实性、完整性、可用性、安全性检测结果；",
        "监管链报告：每条记录的监管链（HTML 与 PDF）。",
        "",
        "如何核验：",
        "  bagit.py --validate 本目录                  （包内每个文件的 SHA-256）",
        "  dockgate verify --bag 本目录 [--pubkey 公钥] [--sm2-pubkey SM2公钥]",
        "                                              （签名、哈希、监管链、可用性、安全性）",
        "",
        "不用 dockgate，只用 sha256sum 与 OpenSSL 3（在本目录下执行，以第一条记录为例；CLIP 换成其他记录即可）：",
        "每两行输出的哈希或密钥编号应相同，签名核验应输出 Signature Verified Successfully"
        + ("，SM2 签名核验应输出 Verified OK。" if sm2_ids else "。"),
        "SM2 签名使用 GM/T 0009 默认用户标识 1234567812345678（OpenSSL 默认为空，须用 -sigopt distid: 指定）。"
        if sm2_ids else "",
        MANUAL_BEGIN,
        *[f"  {line}" for line in manual_commands(ev)],
        MANUAL_END,
        "",
        "采集站密钥编号（Ed25519）：",
        *[f"  {k}" for k in key_ids],
        *(["采集站 SM2 密钥编号（国密）：", *[f"  {k}" for k in sm2_ids]] if sm2_ids else []),
        "",
        "监管链日志中与本案无关的条目（其他案件、其他记录、其他人员）只保留其哈希（\"redacted\"），",
        "哈希链仍可逐条核验，其内容不出现在本包中。",
        "",
        "This is a BagIt package of body-worn camera evidence exported by dockgate; see docs/casefile.md.",
    ]
    return "\n".join(lines) + "\n"
