# ruff: noqa: RUF001 - Chinese text takes full-width punctuation
"""The chain-of-custody report (监管链报告): per case or per clip, HTML and
PDF, in Chinese by default (English with ``lang="en"``).

For each clip: the five required items (case number, capture time, capture
place, collector, what it proves), the recorder and its clock drift, the
station, SHA-256 (and SM3 when stamped), whether each signature verifies
against the given station keys, every custody event about it with time and
actor, and the checkpoints (with trusted timestamps where the TSA gave one)
that cover those events; then how to verify all of it by hand.

The PDF is laid out by ``gateway.casefile.pdf`` (fixed tables, drawn row by
row and streamed to the file) with Noto Sans CJK from Debian's
``fonts-noto-cjk``, embedded once per document as a subset, so Chinese
renders without any font on the reader's side. The HTML is the same report
for a browser.

Why one module of some 440 lines: the words of both languages, the HTML
template and the PDF layout say the same report and change together.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jinja2 import Environment
from markupsafe import Markup

from gateway.casefile.catalogue import local_time, manual_commands
from gateway.casefile.source import CaseEvidence, ClipEvidence, CustodyEntry
from gateway.errors import DockgateError
from gateway.evidence.signing import key_id, verify

REPORT_STEM = "监管链报告"


class ReportError(DockgateError):
    """The PDF renderer did not finish (killed, out of memory, a font missing)."""

    reason = "report"

_T: dict[str, dict[str, str]] = {
    "zh": {
        "title": "监管链报告", "case": "案件编号", "selection": "范围", "made": "生成时间", "clips": "音像记录",
        "clip": "音像记录", "capture_time": "采集时间", "recorder_clock": "记录仪时钟", "utc": "校正后（UTC）",
        "drift": "时钟偏差（秒）", "place": "采集地点", "collector": "采集人", "proof": "证明对象",
        "recorder": "执法记录仪", "station": "采集站", "sha256": "SHA-256", "sm3": "SM3", "size": "大小（字节）",
        "duration": "时长（秒）", "partial": "不完整（录制中断）", "yes": "是", "no": "否", "signature": "签名",
        "key_id": "密钥编号", "valid": "有效", "invalid": "无效", "unknown_key": "未知密钥",
        "amendments": "修正件", "events": "监管事件", "seq": "序号", "time": "时间", "actor": "执行者",
        "event": "事件", "detail": "内容", "checkpoints": "检查点", "timestamp": "可信时间戳",
        "tsr_yes": "有（RFC 3161 令牌）", "tsr_no": "无", "how": "如何手工核验", "archive_key": "档案库路径",
        "stamped_at": "签章时间", "none": "（无）", "local": "当地时间", "page": "第{}页，共{}页",
        "volume": "第{}卷，共{}卷，本卷为第{}至{}条",
        "how_text": "以下命令只需 sha256sum 与 OpenSSL 3，在档案包目录下执行（以第一条记录为例）；每两行输出应相同，"
                    "Ed25519 签名核验输出 Signature Verified Successfully，SM2 签名核验输出 Verified OK"
                    "（GM/T 0009 默认用户标识 1234567812345678）。",
    },
    "en": {
        "title": "Chain-of-custody report", "case": "Case number", "selection": "Selection", "made": "Made at",
        "clips": "Clips", "clip": "Clip", "capture_time": "Capture time", "recorder_clock": "recorder clock",
        "utc": "corrected (UTC)", "drift": "Clock drift (s)", "place": "Capture place", "collector": "Collector",
        "proof": "Proves", "recorder": "Recorder", "station": "Station", "sha256": "SHA-256", "sm3": "SM3",
        "size": "Size (bytes)", "duration": "Duration (s)", "partial": "Partial (cut short)", "yes": "yes",
        "no": "no", "signature": "Signature", "key_id": "Key id", "valid": "valid", "invalid": "INVALID",
        "unknown_key": "unknown key", "amendments": "Amendments", "events": "Custody events", "seq": "Seq",
        "time": "Time", "actor": "Actor", "event": "Event", "detail": "Detail", "checkpoints": "Checkpoints",
        "timestamp": "Trusted timestamp", "tsr_yes": "yes (RFC 3161 token)", "tsr_no": "none",
        "how": "How to verify by hand", "archive_key": "Archive key", "stamped_at": "Signed at",
        "none": "(none)", "local": "local time", "page": "page {} of {}",
        "volume": "volume {} of {}, clips {} to {}",
        "how_text": "These commands need only sha256sum and OpenSSL 3, run in the bag's folder (the first clip as "
                    "the example); each pair of lines printed must be equal, the Ed25519 check prints Signature "
                    "Verified Successfully, the SM2 check Verified OK (GM/T 0009 default ID 1234567812345678).",
    },
}

_EVENTS_ZH = {
    "pulled": "从记录仪复制", "stamped": "签章（生成清单）", "partial_clip": "记录不完整", "assigned": "分配案件",
    "amended": "修正（签名修正件）", "forwarded": "发送到档案库", "verified": "档案库回读核验",
    "clip_archived": "归档", "amendment_archived": "修正件归档", "released": "从记录仪释放",
    "purged": "从暂存区清除", "seen_again": "再次见到", "quarantined": "隔离", "docked": "插入采集站",
    "identified": "识别记录仪", "clock": "读取时钟", "undocked": "拔出", "pulled_again": "重新复制",
    "clip_interrupted": "复制中断", "viewed": "查看", "played": "播放", "downloaded": "下载", "exported": "导出",
    "marked": "标记", "searched": "检索", "storage_switched": "切换到存储模式",
}
#: what an event's data says, in words a clerk reads (keys not named here are shown as they are)
_DATA_ZH = {
    "key": "档案库路径", "size": "大小（字节）", "partial": "不完整", "serial": "记录仪编号", "path": "记录仪上的文件",
    "slot": "插槽", "manifest_sha256": "清单 SHA-256", "amendment_sha256": "修正件 SHA-256", "assignment": "分配编号",
    "case_number": "案件编号", "proof_object": "证明对象", "category": "类别", "officer": "警号",
    "verified_by": "核验方式", "existed": "档案库已有", "why": "原因", "drift_s": "时钟偏差（秒）",
    "start": "起", "end": "止", "what": "内容", "who": "执行者", "remote": "来源地址", "reason": "原因",
    "error": "错误", "duration_s": "耗时（秒）", "capture_utc": "采集时间（UTC）", "issued_at": "签发时间",
}
_DATA_EN = {"key": "archive key", "size": "size (bytes)", "serial": "recorder", "path": "file on the recorder",
            "manifest_sha256": "manifest SHA-256", "amendment_sha256": "amendment SHA-256"}

_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ 'zh-CN' if lang == 'zh' else 'en' }}"><head><meta charset="utf-8">
<title>{{ t.title }} {{ heading }}</title>
<style>
@page { size: A4; margin: 18mm 12mm 16mm 12mm;
  @top-left { content: "{{ t.title|css }} · {{ (t.case if case else t.selection)|css }} {{ (case or selection)|css
    }}{% if volume %} · {{ volume|css }}{% endif %}";
    font-size: 8pt; color: #444; }
  @top-right { content: "{{ made_local|css }}"; font-size: 8pt; color: #444; }
  @bottom-center { content: {{ page_css }}; font-size: 8pt; } }
body { font-family: "Noto Sans CJK SC", "Noto Sans CJK", sans-serif; font-size: 9pt; }
h1 { font-size: 15pt; } h2 { font-size: 12pt; margin-top: 14pt; } h3 { font-size: 10pt; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; table-layout: fixed; }
th, td { border: 0.5pt solid #888; padding: 2pt 3pt; text-align: left; vertical-align: top; }
th { background: #eee; width: 22%; }
table.events th { width: auto; }
table.events th.c1 { width: 7%; } table.events th.c2 { width: 22%; } table.events th.c3 { width: 17%; }
table.events th.c4 { width: 24%; } table.events th.c5 { width: 30%; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; word-break: break-all; }
.bad { color: #b00; font-weight: bold; }
pre { font-size: 7.5pt; white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: 4pt; }
</style></head><body>
<h1>{{ t.title }}</h1>
<table>
<tr><th>{{ t.case }}</th><td>{{ case or t.none }}</td></tr>
<tr><th>{{ t.selection }}</th><td>{{ selection }}</td></tr>
<tr><th>{{ t.clips }}</th><td>{{ clips|length }}{% if volume %} ({{ volume }}){% endif %}</td></tr>
<tr><th>{{ t.made }}</th><td>{{ made_local }}<br>UTC {{ made }}</td></tr>
</table>
{% for c in clips %}
<h2>{{ t.clip }} {{ loop.index }}: {{ c.name }}</h2>
<table>
<tr><th>{{ t.case }}</th><td>{{ c.case or t.none }}</td></tr>
<tr><th>{{ t.capture_time }}</th><td>{{ t.local }} {{ c.local|v }}<br>{{ t.utc }} {{ c.utc|v }}<br>
  {{ t.recorder_clock }} {{ c.recorder_clock|v }}</td></tr>
<tr><th>{{ t.place }}</th><td>{{ c.place|v }}</td></tr>
<tr><th>{{ t.collector }}</th><td>{{ c.collector|v }}</td></tr>
<tr><th>{{ t.proof }}</th><td>{{ c.proof or t.none }}</td></tr>
<tr><th>{{ t.recorder }}</th><td>{{ c.recorder|v }}</td></tr>
<tr><th>{{ t.drift }}</th><td>{{ c.drift|v }}</td></tr>
<tr><th>{{ t.station }}</th><td>{{ c.station|v }}</td></tr>
<tr><th>{{ t.archive_key }}</th><td class="hash">{{ c.key }}</td></tr>
<tr><th>{{ t.sha256 }}</th><td class="hash">{{ c.sha256 }}</td></tr>
{% if c.sm3 %}<tr><th>{{ t.sm3 }}</th><td class="hash">{{ c.sm3 }}</td></tr>{% endif %}
<tr><th>{{ t.size }}</th><td>{{ c.size|v }}</td></tr>
<tr><th>{{ t.duration }}</th><td>{{ c.duration|v }}</td></tr>
<tr><th>{{ t.partial }}</th><td>{{ t.yes if c.partial else t.no }}</td></tr>
<tr><th>{{ t.signature }}</th><td><span class="{{ '' if c.sig_ok else 'bad' }}">{{ c.sig }}</span>;
  {{ t.key_id }} <span class="hash">{{ c.key_id|v }}</span>; {{ t.stamped_at }} {{ c.stamped_local|v }}
  (UTC {{ c.stamped_at|v }})</td></tr>
<tr><th>{{ t.amendments }}</th><td>{% for a in c.amendments %}{{ a }}<br>{% else %}{{ t.none }}{% endfor %}</td></tr>
</table>
<h3>{{ t.events }}</h3>
<table class="events"><thead><tr><th class="c1">{{ t.seq }}</th><th class="c2">{{ t.time }}</th>
<th class="c3">{{ t.event }}</th><th class="c4">{{ t.actor }}</th><th class="c5">{{ t.detail }}</th></tr></thead>
{% for e in c.events %}<tr><td>{{ e.seq|v }}</td><td>{{ e.local|v }}<br>UTC {{ e.ts|v }}</td>
<td>{{ e.event }}</td><td>{{ e.actor }}</td>
<td>{% for k, val in e.detail %}{{ k }}: <span class="{{ 'hash' if val|length > 40 else '' }}">{{ val }}</span><br>
{% endfor %}</td>
</tr>{% else %}<tr><td colspan="5">{{ t.none }}</td></tr>{% endfor %}
</table>
{% endfor %}
<h2>{{ t.checkpoints }}</h2>
<table><tr><th>{{ t.station }}</th><th>{{ t.seq }}</th><th>{{ t.time }}</th><th>{{ t.timestamp }}</th></tr>
{% for cp in checkpoints %}<tr><td>{{ cp.station|v }}</td><td>{{ cp.seq|v }}</td>
<td>{{ cp.local|v }}<br>UTC {{ cp.made_at|v }}</td>
<td>{{ t.tsr_yes if cp.tsr else t.tsr_no }}</td></tr>{% else %}<tr><td colspan="4">{{ t.none }}</td></tr>{% endfor %}
</table>
<h2>{{ t.how }}</h2>
<p>{{ t.how_text }}</p>
<pre>{% for line in commands %}{{ line }}
{% endfor %}bagit.py --validate .
dockgate verify --bag .</pre>
</body></html>
"""


def _detail(data: dict[str, Any], lang: str, clip_key: str = "") -> list[tuple[str, str]]:
    """An event's data as (label, value) lines a clerk reads; the clip's own
    hash and archive key are the section's."""
    names = _DATA_ZH if lang == "zh" else _DATA_EN
    yes, no = ("是", "否") if lang == "zh" else ("yes", "no")
    out = []
    for k, v in sorted(data.items()):
        if k == "sha256" or v is None or v == "" or (k == "key" and v == clip_key):
            continue
        text = (yes if v else no) if isinstance(v, bool) else str(v)
        out.append((names.get(k, k), text))
    return out


def _by_clip(ev: CaseEvidence) -> dict[str, list[CustodyEntry]]:
    """The excerpt's entries by the clip hash or archive key they name (one
    pass, not one per clip)."""
    out: dict[str, list[CustodyEntry]] = {}
    for e in ev.entries:
        data = e.entry.get("data") or {}
        if not isinstance(data, dict):
            continue
        names = {str(data.get("sha256")), str(data.get("key"))} - {"None"}
        for name in names:
            out.setdefault(name, []).append(e)
    return out


def _clip_view(c: ClipEvidence, ev: CaseEvidence, keys: dict[str, Ed25519PublicKey], t: dict[str, str],
               lang: str, tz: tzinfo | None, by_clip: dict[str, list[CustodyEntry]] | None = None) -> dict[str, Any]:
    d = c.doc
    clip = d.get("clip") or {}
    who = d.get("collector") or {}
    rec = d.get("recorder") or {}
    st = d.get("station") or {}
    place = d.get("capture_place") or {}
    pub = keys.get(str(d.get("key_id")))
    sig = c.signature
    if pub is None:
        sig_text, sig_ok = t["unknown_key"], False
    else:
        sig_ok = sig is not None and verify(pub, c.manifest, sig)
        sig_text = "Ed25519 " + (t["valid"] if sig_ok else t["invalid"])
    if c.extra_keys:
        sig_text += " + SM2"
    events = []
    about = ev.entries if by_clip is None else sorted(
        {id(e): e for e in by_clip.get(c.sha256, []) + by_clip.get(c.key, [])}.values(),
        key=lambda e: (str(e.entry.get("station")), int(e.entry.get("seq", 0))))
    for e in about:
        data = e.entry.get("data") or {}
        if data.get("sha256") != c.sha256 and data.get("key") != c.key:
            continue
        name = str(e.entry.get("event"))
        events.append({"seq": e.entry.get("seq"), "ts": e.entry.get("ts"), "local": local_time(e.entry.get("ts"), tz),
                       "actor": f"{t['station']} {e.entry.get('station')}",
                       "event": f"{_EVENTS_ZH.get(name, name)} ({name})" if lang == "zh" else name,
                       "detail": _detail(data, lang, c.key)})
    utc = (d.get("capture_time") or {}).get("utc")
    return {
        "name": c.key.rsplit("/", 1)[-1], "key": c.key, "case": c.case_number, "proof": c.latest("proof_object"),
        "recorder_clock": (d.get("capture_time") or {}).get("recorder_clock"), "utc": utc,
        "local": local_time(utc, tz),
        "place": " ".join(str(x) for x in (place.get("text"), place.get("latitude"), place.get("longitude"))
                          if x is not None),
        "collector": " ".join(str(x) for x in (who.get("name"), who.get("officer"), who.get("unit")) if x),
        "recorder": " ".join(str(x) for x in (rec.get("serial"), rec.get("model"), rec.get("profile")) if x),
        "drift": rec.get("clock_drift_s"),
        "station": f"{st.get('id') or '-'} ({st.get('location') or '-'})"
                   + (f", slot {st.get('slot')}" if st.get("slot") is not None else ""),
        "sha256": clip.get("sha256"), "sm3": clip.get("sm3"), "size": clip.get("size"),
        "duration": (clip.get("container") or {}).get("duration_s"), "partial": bool(clip.get("partial")),
        "sig": sig_text, "sig_ok": sig_ok, "key_id": d.get("key_id"), "stamped_at": d.get("stamped_at"),
        "stamped_local": local_time(d.get("stamped_at"), tz),
        "amendments": [f"#{n}: {a.get('case_number') or '-'} / {a.get('proof_object') or '-'} "
                       f"({local_time(a.get('issued_at'), tz) or '-'}), manifest sha256 "
                       f"{(a.get('amends') or {}).get('manifest_sha256') or '-'}"
                       for n, _, a in c.amendments],
        "events": events,
    }


def _css_string(value: object) -> Markup:
    """*value* inside a CSS string of the page's <style> (the running
    header): quotes, backslashes and angle brackets escaped the CSS way, so
    no case number can end the string or the style element."""
    text = " ".join(str(value).split())
    for ch, esc in (("\\", "\\\\"), ('"', '\\"'), ("<", "\\3c "), (">", "\\3e ")):
        text = text.replace(ch, esc)
    return Markup(text)


def _context(ev: CaseEvidence, *, lang: str, keys: list[Ed25519PublicKey] | None, only: str | None,
             tz: tzinfo | None, volume: tuple[int, int, int, int] | None) -> dict[str, Any]:
    """What the report says, for the HTML template and the PDF layout alike."""
    if lang not in _T:
        raise ValueError(f"language {lang!r}: zh or en")
    t = _T[lang]
    kmap = {key_id(k): k for k in keys or []}
    clips = [c for c in ev.clips if only is None or only in (c.sha256, c.key)]
    by_clip = _by_clip(ev)
    views = [_clip_view(c, ev, kmap, t, lang, tz, by_clip) for c in clips]
    vol_text = t["volume"].format(*volume) if volume is not None else ""
    cps = []
    for k, body in sorted(ev.checkpoint_docs.items()):
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        cps.append({"station": doc.get("station"), "seq": doc.get("seq"), "made_at": doc.get("made_at"),
                    "local": local_time(doc.get("made_at"), tz),
                    "tsr": k + ".tsr" in ev.checkpoints, "sha256": hashlib.sha256(body).hexdigest()})
    made = datetime.now(UTC).isoformat(timespec="seconds")
    sub = ev
    if only is not None:
        sub = CaseEvidence(ev.selection, clips, ev.segments, ev.checkpoints, ev.entries, ev.checkpoint_docs)
    return {"t": t, "lang": lang, "case": ev.selection.case, "selection": ev.selection.describe(), "clips": views,
            "heading": ev.selection.describe(), "made": made, "made_local": local_time(made, tz),
            "checkpoints": cps, "commands": manual_commands(sub) if clips else [], "volume": vol_text}


def render_html(ev: CaseEvidence, *, lang: str = "zh", keys: list[Ed25519PublicKey] | None = None,
                only: str | None = None, tz: tzinfo | None = None,
                volume: tuple[int, int, int, int] | None = None) -> str:
    """*keys*: the station public keys signatures are checked with; *only*:
    one clip (its SHA-256 or archive key); *tz*: the zone local times are
    shown in beside UTC (default: this machine's); *volume*: (this volume,
    of how many, its first and last clip's number in the case)."""
    ctx = _context(ev, lang=lang, keys=keys, only=only, tz=tz, volume=volume)
    t = ctx["t"]
    env = Environment(autoescape=True)
    none = t["none"]
    env.filters["v"] = lambda x: none if x is None or x == "" else x  # never "None" on paper
    env.filters["css"] = _css_string
    before, between = t["page"].split("{}")[:2]
    after = t["page"].split("{}")[2]
    page_css = Markup(f'"{_css_string(before)}" counter(page) "{_css_string(between)}" counter(pages) '
                      f'"{_css_string(after)}"')
    return env.from_string(_TEMPLATE).render(page_css=page_css, **ctx)


def _pdf_document(ctx: dict[str, Any], f: BinaryIO | None, total: int = 0) -> int:
    """The report of *ctx* as PDF to *f* (None: only count its pages);
    returns the number of pages."""
    from gateway.casefile.pdf import Cell, Face, Layout, PdfWriter, Style

    t = ctx["t"]
    sans, mono = Face("Noto Sans CJK SC", "F1"), Face("Noto Sans Mono CJK SC", "F2")
    body, small, hashes = Style(sans, 9), Style(sans, 8, (0.267, 0.267, 0.267)), Style(mono, 7.5, break_all=True)
    bad, pre = Style(sans, 9, (0.69, 0, 0)), Style(mono, 7.5)
    h1, h2, h3 = Style(sans, 15), Style(sans, 12), Style(sans, 10)
    none = t["none"]

    def v(x: object) -> str:
        return none if x is None or x == "" else str(x)  # never "None" on paper

    head_text = (f"{t['title']} · {t['case'] if ctx['case'] else t['selection']} {ctx['case'] or ctx['selection']}"
                 + (f" · {ctx['volume']}" if ctx["volume"] else ""))

    def furniture(lay: Layout, page: int) -> None:
        top = lay.top - 8 * MM_
        lay.text(lay.left, top, " ".join(head_text.split()), small)
        right = ctx["made_local"] or ""
        lay.text(lay.size[0] - lay.right - sans.width(right, 8), top, right, small)
        foot = t["page"].format(page, total)
        lay.text((lay.size[0] - sans.width(foot, 8)) / 2, lay.size[1] - lay.bottom + 8 * MM_, foot, Style(sans, 8))

    out = PdfWriter(f, (sans, mono)) if f is not None else None
    lay = Layout(out, furniture)

    def kv(label: str, spans: list[tuple[str, Any]]) -> list[Cell]:
        return [Cell([(label, body)], head=True), Cell(spans)]

    lay.heading(t["title"], h1, 0)
    lay.table([kv(t["case"], [(ctx["case"] or none, body)]), kv(t["selection"], [(ctx["selection"], body)]),
               kv(t["clips"], [(f"{len(ctx['clips'])}" + (f" ({ctx['volume']})" if ctx["volume"] else ""), body)]),
               kv(t["made"], [(f"{ctx['made_local']}\nUTC {ctx['made']}", body)])], [0.22, 0.78])
    for n, c in enumerate(ctx["clips"], start=1):
        lay.heading(f"{t['clip']} {n}: {c['name']}", h2, 14)
        rows = [kv(t["case"], [(c["case"] or none, body)]),
                kv(t["capture_time"], [(f"{t['local']} {v(c['local'])}\n{t['utc']} {v(c['utc'])}\n"
                                        f"{t['recorder_clock']} {v(c['recorder_clock'])}", body)]),
                kv(t["place"], [(v(c["place"]), body)]), kv(t["collector"], [(v(c["collector"]), body)]),
                kv(t["proof"], [(c["proof"] or none, body)]), kv(t["recorder"], [(v(c["recorder"]), body)]),
                kv(t["drift"], [(v(c["drift"]), body)]), kv(t["station"], [(v(c["station"]), body)]),
                kv(t["archive_key"], [(c["key"], hashes)]), kv(t["sha256"], [(str(c["sha256"]), hashes)])]
        if c["sm3"]:
            rows.append(kv(t["sm3"], [(str(c["sm3"]), hashes)]))
        rows += [kv(t["size"], [(v(c["size"]), body)]), kv(t["duration"], [(v(c["duration"]), body)]),
                 kv(t["partial"], [(t["yes"] if c["partial"] else t["no"], body)]),
                 kv(t["signature"], [(c["sig"], body if c["sig_ok"] else bad), (f"; {t['key_id']} ", body),
                                     (v(c["key_id"]), hashes), (f"; {t['stamped_at']} {v(c['stamped_local'])} "
                                                                f"(UTC {v(c['stamped_at'])})", body)]),
                 kv(t["amendments"], [("\n".join(c["amendments"]) or none, body)])]
        lay.table(rows, [0.22, 0.78])
        lay.heading(t["events"], h3, 4)
        events = [[Cell([(v(e["seq"]), body)]), Cell([(f"{v(e['local'])}\nUTC {v(e['ts'])}", body)]),
                   Cell([(e["event"], body)]), Cell([(e["actor"], body)]),
                   Cell([part for k, val in e["detail"] for part in ((f"{k}: ", body),
                                                                     (f"{val}\n", hashes if len(val) > 40 else body))])]
                  for e in c["events"]] or [[Cell([(none, body)], span=5)]]
        lay.table(events, _EVENT_COLUMNS, header=[Cell([(t[k], body)], head=True)
                                                   for k in ("seq", "time", "event", "actor", "detail")])
    lay.heading(t["checkpoints"], h2, 14)
    cps = [[Cell([(v(cp["station"]), body)]), Cell([(v(cp["seq"]), body)]),
            Cell([(f"{v(cp['local'])}\nUTC {v(cp['made_at'])}", body)]),
            Cell([(t["tsr_yes"] if cp["tsr"] else t["tsr_no"], body)])] for cp in ctx["checkpoints"]]
    lay.table(cps or [[Cell([(none, body)], span=4)]], [0.2, 0.15, 0.35, 0.3],
              header=[Cell([(t[k], body)], head=True) for k in ("station", "seq", "time", "timestamp")])
    lay.heading(t["how"], h2, 14)
    lay.paragraph([(t["how_text"], body)], 9)
    lay.paragraph([("\n".join([*ctx["commands"], "bagit.py --validate .", "dockgate verify --bag ."]), pre)], 7.5,
                  background=0.965, pad=4)
    lay.finish()
    if out is not None:
        out.finish(f"{t['title']} {ctx['heading']}")
    return lay.pages


MM_ = 72 / 25.4
#: the custody-event table's columns (sequence, time, event, actor, detail) as fractions of the width
_EVENT_COLUMNS = [0.06, 0.26, 0.17, 0.19, 0.32]


def write_report_pdf(ctx: dict[str, Any], path: Path) -> None:
    """One PDF document, laid out twice (pages counted, then written: the
    page footer says "page n of m"), streamed to *path* and made durable."""
    pages = _pdf_document(ctx, None)
    with open(path, "wb") as f:
        _pdf_document(ctx, f, pages)
        f.flush()
        os.fsync(f.fileno())


#: clips per volume of a PDF report: the writer's memory does not grow with a document (pages are streamed),
#: so this only keeps a file one can still mail and print: 1 000 clips are some 1 000 pages
VOLUME_CLIPS = 1000


def volume_paths(out: Path, clips: int) -> list[Path]:
    """Where the PDF of *clips* clips is written: *out* itself up to
    ``VOLUME_CLIPS``, else ``<stem>-001.pdf``, ``-002`` ... beside it."""
    n = max(1, -(-clips // VOLUME_CLIPS))
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k:03d}{out.suffix}") for k in range(1, n + 1)]


def write_pdf(ev: CaseEvidence, out: Path, *, lang: str = "zh", keys: list[Ed25519PublicKey] | None = None,
              tz: tzinfo | None = None) -> list[Path]:
    """The PDF report of *ev* streamed to disk (``gateway.casefile.pdf``),
    in volumes of ``VOLUME_CLIPS`` clips (``volume_paths``)."""
    from gateway.casefile.pdf import FontMissing

    paths = volume_paths(out, len(ev.clips))
    for k, path in enumerate(paths):
        part = ev.clips[k * VOLUME_CLIPS:(k + 1) * VOLUME_CLIPS]
        sub = CaseEvidence(ev.selection, part, ev.segments, ev.checkpoints, ev.entries, ev.checkpoint_docs)
        vol = (k + 1, len(paths), k * VOLUME_CLIPS + 1, k * VOLUME_CLIPS + len(part)) if len(paths) > 1 else None
        try:
            write_report_pdf(_context(sub, lang=lang, keys=keys, only=None, tz=tz, volume=vol), path)
        except FontMissing as e:
            raise ReportError(str(e)) from e
    return paths
