"""The pages' words, Chinese first (the station's officers), English beside."""

# Chinese text takes Chinese (full-width) punctuation
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Callable

LANGS = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("执法记录仪采集站", "Body-camera docking station"),
    "slot": ("槽位", "Slot"),
    "empty": ("空闲", "Empty"),
    "state.working": ("正在采集", "Collecting"),
    "state.keep": ("请勿拔出", "Do not remove"),
    "state.done": ("可以取下", "You may remove it"),
    "state.error": ("出错", "Error"),
    "keep.hint": ("请勿拔出记录仪", "Leave the recorder docked"),
    "identifying": ("正在识别记录仪", "Identifying the recorder"),
    "switching": ("记录仪正在切换到存储模式", "The recorder is switching to storage mode"),
    "officer": ("警员", "Officer"),
    "serial": ("记录仪编号", "Recorder"),
    "battery": ("电量", "Battery"),
    "clips": ("段录像", "clips"),
    "eta": ("预计剩余", "Time left"),
    "eta.short": ("剩余", "left"),
    "already": ("已采集过", "already held"),
    "done.summary": ("本次采集 {done} 段，此前已采集 {known} 段", "{done} clips pulled now, {known} held before"),
    "done.failed": ("{n} 段未能读取：请重新插入记录仪再试一次", "{n} clips could not be read: dock the recorder "
                                                       "again"),
    "why.wrong_password": ("记录仪密码与工作站设置不一致，未读取任何内容。请取下记录仪，交管理员核对密码。",
                           "The recorder's password does not match the station's; nothing was read. Remove it "
                           "and ask the administrator to check the password."),
    "why.foreign": ("工作站不认识这台设备（不是已登记的执法记录仪型号），未读取也未写入任何内容。"
                    "请取下；如确为执法记录仪，请联系管理员添加型号。",
                    "The station does not recognise this device (not a registered recorder model); nothing "
                    "was read or written. Remove it; if it is a recorder, ask the administrator to add its "
                    "model."),
    "why.disk_full": ("工作站存储空间已满，正在等待腾出空间。请勿拔出；如长时间没有进展，请通知管理员。",
                      "The station's disk is full; it is waiting for space. Leave the recorder docked; tell "
                      "the administrator if nothing moves."),
    "why.storage_missing": ("记录仪没有切换到存储模式。请取下后重新插入。",
                            "The recorder did not switch to storage mode. Remove it and dock it again."),
    "why.error": ("读取出错。请取下后重新插入；再次出错请联系管理员。",
                  "Reading failed. Remove the recorder and dock it again; if it fails again, call the "
                  "administrator."),
    "archive.down": ("档案库暂时连不上：录像已安全保存在工作站，恢复后自动上传。可以照常取下记录仪。",
                     "The archive cannot be reached: clips are kept safe on the station and go out when it "
                     "is back. You may remove recorders as usual."),
    "archive.refused": ("档案库拒绝了本工作站：录像保存在工作站。请通知管理员。",
                        "The archive refuses this station: clips are kept on the station. Tell the "
                        "administrator."),
    # the same in a few words, for a card on a crowded screen
    "short.wrong_password": ("密码不符，请取下交管理员", "Wrong password: remove it, see the administrator"),
    "short.foreign": ("未登记设备，请取下", "Not a registered recorder: remove it"),
    "short.disk_full": ("存储已满，请勿拔出", "Station disk full: leave it docked"),
    "short.storage_missing": ("未进入存储模式，请重插", "No storage mode: dock it again"),
    "short.error": ("读取出错，请重新插入", "Reading failed: dock it again"),
    "short.failed": ("{n} 段未读，请重插", "{n} unread: dock it again"),
    "lost.title": ("连接已断开", "Connection lost"),
    "lost.text": ("下面的状态已停止更新。记录仪可以留在槽位：恢复后自动继续，录像不会丢失。"
                  "一分钟内未恢复，请通知管理员。",
                  "The cards below are no longer updated. Recorders may stay docked: collecting goes on when "
                  "the station is back, nothing is lost. If it is not back within a minute, tell the "
                  "administrator."),
    "free.none": ("请将记录仪插入任一空闲槽位", "Dock a recorder in any free slot"),
    "free.slots": ("空闲槽位", "Free slots"),
    "mark": ("标记录像", "Mark clips"),
    "mark.short": ("标记", "Mark"),
    "mark.title": ("标记我的录像", "Mark my clips"),
    "mark.pin": ("警员密码（PIN）", "Officer PIN"),
    "mark.case": ("案件编号", "Case number"),
    "mark.proof": ("证明对象", "What it proves"),
    "mark.category": ("类别", "Category"),
    "mark.important": ("重要", "Important"),
    "mark.submit": ("保存标记", "Save"),
    "mark.pick": ("选择录像", "Choose clips"),
    "mark.saved": ("已保存：签名补充记录将写入档案（原记录不改动）。",
                   "Saved: a signed amendment goes to the archive (nothing is rewritten)."),
    "mark.bad_pin": ("PIN 不正确。", "Wrong PIN."),
    "mark.locked": ("错误次数过多，请稍后再试。", "Too many wrong attempts; try again later."),
    "mark.none": ("请至少选择一段已盖章的录像，并填写至少一项。", "Choose at least one stamped clip and fill in at "
                                                         "least one field."),
    "mark.nopin": ("此警员尚未设置 PIN，请联系管理员。", "No PIN is set for this officer; ask the administrator."),
    "mark.expired": ("操作超时，请重新输入 PIN。", "This took too long; enter the PIN again."),
    "mark.continue": ("下一步", "Next"),
    "card.held": ("本次入库 {n} 段", "{n} clips taken this time"),
    "card.important": ("{n} 段重要", "{n} important"),
    "back": ("返回", "Back"),
    "importance.yes": ("重要", "important"),
    "clip.state": ("状态", "State"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "user": ("账号", "Account"),
    "password": ("密码", "Password"),
    "login.bad": ("账号或密码不正确。", "Wrong account or password."),
    "login.locked": ("尝试次数过多，已暂时锁定，请稍后再试。", "Too many attempts: locked for a while. Try again "
                                                          "later."),
    "review": ("调阅", "Review"),
    "search": ("查询", "Search"),
    "from": ("从", "From"),
    "to": ("到", "To"),
    "any": ("全部", "any"),
    "captured": ("拍摄时间", "Captured"),
    "results": ("结果", "Results"),
    "matches": ("共 {n} 条", "{n} matches"),
    "page": ("页", "page"),
    "name": ("文件名", "File name"),
    "play": ("播放", "Play"),
    "download": ("下载", "Download"),
    "manifest": ("清单", "Manifest"),
    "custody": ("保管记录", "Custody trail"),
    "looks": ("调阅记录", "Who looked"),
    "verify": ("校验", "Verification"),
    "export": ("导出案件清单", "Export the case's manifests"),
    "stats": ("统计", "Statistics"),
    "dispatch": ("警情导入", "Dispatch import"),
    "size": ("大小", "Size"),
    "stats.wrong_password": ("记录仪密码错误次数", "Wrong recorder passwords"),
    "stats.foreign": ("未登记设备次数", "Unrecognised devices"),
    "stats.login_failed": ("登录失败次数", "Failed logins"),
    "stats.units": ("按单位", "By unit"),
    "stats.officers": ("按警员", "By officer"),
    "stats.unit": ("单位", "Unit"),
    "stats.hours": ("小时", "Hours"),
    "stats.late": ("超过24小时才采集", "Docked > 24 h after recording"),
    "stats.nocase": ("超过{h:g}小时未关联案件", "No case after {h:g} h"),
    "dispatch.help": ("粘贴或上传警情表（CSV：警号, 开始时间, 结束时间, 案件编号；时间为 ISO 8601）。",
                      "Paste a dispatch list (CSV: officer, start, end, case number; ISO 8601 times)."),
    "dispatch.propose": ("生成关联建议", "Propose assignments"),
    "dispatch.proposals": ("建议：录像时间与警情重叠", "Proposals: clips overlapping a dispatch"),
    "dispatch.confirm": ("确认所选关联", "Confirm the chosen"),
    "dispatch.nofootage": ("没有录像的警情", "Dispatches with no footage"),
    "dispatch.done": ("已确认 {n} 项关联：签名补充记录将写入档案。", "{n} assignments confirmed: signed amendments "
                                                                "follow."),
    "station": ("采集站", "Station"),
}


def translator(lang: str) -> Callable[..., str]:
    i = 1 if lang == "en" else 0

    def t(key: str, **kw: object) -> str:
        words = _WORDS.get(key)
        text = words[i] if words else key
        return text.format(**kw) if kw else text

    return t
