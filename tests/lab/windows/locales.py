"""Locales of the simulated Windows hosts: code pages, tool labels, and the console's byte round trip.

Native tools (vssadmin, diskshadow) write text in the console's OEM code page. The agent sets
``[Console]::OutputEncoding`` to that code page before running them and decodes their bytes with it, so localized
text arrives intact in the JSON answer (FACTS.md, "Localization and encoding"). The lab does the same thing for real:
the rendered text is encoded in the host's OEM code page (:func:`console_bytes`), then decoded with the code page the
agent is modelled to use (:func:`agent_decode`). A character the code page cannot hold comes out as Windows'
best-fit replacement or ``?``; decoding with the wrong code page produces mojibake, as on a real host.

Where the labels come from (see docs/lab-windows.md):

- ``en-US`` vssadmin: real captures (banner, ``Waiting for responses.`` lines, 3-space indentation, the state and
  last-error words seen in captures: Stable, Waiting for completion, Failed, No error, Retryable error, Inconsistent
  shadow copy, Timed out...). diskshadow: Microsoft's ``list writers`` documentation example and script-mode captures.
- ``ja-JP`` vssadmin: a real capture of a healthy Japanese Windows Server (labels, ``[1] 安定``, ``エラーなし``).
  The other state and error words, and every diskshadow label, are LAB TRANSLATIONS (no capture was found): parsers
  must not read them anyway, and tests only rely on their structure.
- ``fr-FR`` vssadmin: a real capture of French Windows (labels with a space before the colon, U+2019 apostrophes);
  the other words are lab translations.
"""

from dataclasses import dataclass, field

# What WideCharToMultiByte does by default (no WC_NO_BEST_FIT_CHARS) for a few characters a code page lacks.
BEST_FIT = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u00a0": " ",
}

EN_STATE_WORDS = {
    0: "Unknown",
    1: "Stable",
    2: "Waiting for freeze",
    3: "Waiting for thaw",
    4: "Waiting for post snapshot",
    5: "Waiting for completion",
}
EN_ERROR_WORDS = {
    "no_error": "No error",
    "retryable": "Retryable error",
    "non_retryable": "Non-retryable error",
    "timed_out": "Timed out",
    "not_responding": "Not responding",
    "inconsistent": "Inconsistent shadow copy",
    "out_of_resources": "Out of resources",
    "unexpected": "Unexpected error",
}

# diskshadow's writer metadata listing (KB 3098315, the FRS writer metadata example).
METADATA_LABELS = {
    "writer_id": "- Writer ID   = ",
    "instance_id": "- Writer instance ID = ",
    "restore_events": "- Supports restore events = ",
    "restore_conditions": "- Writer restore conditions = ",
    "restore_method": "- Restore method = ",
    "reboot": "- Requires reboot after restore = ",
    "excluded": "- Excluded files:",
    "component": "+ Component ",
    "name": "- Name: ",
    "logical_path": "- Logical path: ",
    "full_path": "- Full path: ",
    "caption": "- Caption: ",
    "type": "- Type: ",
    "selectable": "- Is selectable: ",
    "top_level": "- Is top level: ",
    "notify": "- Notify on backup complete: ",
    "components": "- Components:",
    "file_list": "- File List: Path = %s, Filespec = %s",
    "paths": "- Paths affected by this component:",
    "volumes": "- Volumes affected by this component:",
    "dependencies": "- Component Dependencies:",
}


@dataclass(frozen=True)
class Locale:  # pylint: disable=too-many-instance-attributes
    """Everything locale-dependent that a host prints or reports."""

    name: str
    oem_code_page: int
    ansi_code_page: int
    # vssadmin list writers
    vssadmin_banner: tuple
    vssadmin_waiting: tuple
    writer_name_label: str
    writer_id_label: str
    instance_id_label: str
    state_label: str
    last_error_label: str
    state_words: dict
    failed_word: str
    error_words: dict
    # diskshadow
    diskshadow_banner: tuple
    on_computer: str
    listing_status: str
    listing_metadata: str
    writers_listed: str
    status_label: str
    failure_code_label: str
    ds_writer_id_label: str
    ds_instance_id_label: str
    metadata_labels: dict = field(default_factory=dict)
    unknown_error_code: str = "<Unknown error code>"
    date_format: str = "%m/%d/%Y %I:%M:%S %p"
    strip_date_zeros: bool = True
    notes: tuple = field(default_factory=tuple)

    def state_word(self, state):
        if 6 <= state <= 15:
            return self.failed_word
        return self.state_words.get(state, self.state_words[0])

    def error_word(self, error):
        return self.error_words[error]

    def metadata_label(self, key):
        """A label of diskshadow's writer metadata listing (``list writers detailed``)."""
        return self.metadata_labels.get(key, METADATA_LABELS[key])

    def format_date(self, moment):
        """A date and time as the console prints it (``6/2/2019 2:55:20 PM`` in en-US, ``2023/01/27 10:56:00`` in ja-JP)."""
        text = moment.strftime(self.date_format)
        if self.strip_date_zeros:
            parts = text.split(" ")
            date_parts = parts[0].split("/")
            parts[0] = "/".join(str(int(part)) for part in date_parts)
            clock = parts[1].split(":")
            clock[0] = str(int(clock[0]))
            parts[1] = ":".join(clock)
            text = " ".join(parts)
        return text


EN_US = Locale(
    name="en-US",
    oem_code_page=437,
    ansi_code_page=1252,
    vssadmin_banner=(
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool",
        "(C) Copyright 2001-2013 Microsoft Corp.",
    ),
    vssadmin_waiting=("Waiting for responses.", "These may be delayed if a shadow copy is being prepared."),
    writer_name_label="Writer name: ",
    writer_id_label="Writer Id: ",
    instance_id_label="Writer Instance Id: ",
    state_label="State: ",
    last_error_label="Last error: ",
    state_words=EN_STATE_WORDS,
    failed_word="Failed",
    error_words=EN_ERROR_WORDS,
    diskshadow_banner=("Microsoft DiskShadow version 1.0", "Copyright (C) 2013 Microsoft Corporation"),
    on_computer="On computer:  %s,  %s",
    listing_status="Listing writer status ...",
    listing_metadata="Listing writer metadata ...",
    writers_listed="%d writers listed.",
    status_label="- Status: ",
    failure_code_label="- Writer Failure code: ",
    ds_writer_id_label="- Writer ID: ",
    ds_instance_id_label="- Instance ID: ",
)

JA_JP = Locale(
    name="ja-JP",
    oem_code_page=932,
    ansi_code_page=932,
    vssadmin_banner=(
        "vssadmin 1.1 - ボリューム シャドウ コピー サービス管理コマンド ライン ツール",
        "(C) Copyright 2001-2013 Microsoft Corp.",
    ),
    # The Japanese capture shows no "Waiting for responses." lines; their translation is unknown, so none are printed.
    vssadmin_waiting=(),
    writer_name_label="ライター名: ",
    writer_id_label="ライター Id: ",
    instance_id_label="ライター インスタンス Id: ",
    state_label="状態: ",
    last_error_label="最後のエラー: ",
    state_words={
        0: "不明",
        1: "安定",
        2: "フリーズ待ち",
        3: "フリーズ解除待ち",
        4: "スナップショット後処理待ち",
        5: "完了待ち",
    },
    failed_word="失敗",
    error_words={
        "no_error": "エラーなし",
        "retryable": "再試行可能なエラー",
        "non_retryable": "再試行できないエラー",
        "timed_out": "タイムアウトしました",
        "not_responding": "応答していません",
        "inconsistent": "一貫性のないシャドウ コピー",
        "out_of_resources": "リソース不足",
        "unexpected": "予期しないエラー",
    },
    diskshadow_banner=("Microsoft DiskShadow バージョン 1.0", "Copyright (C) 2013 Microsoft Corporation"),
    on_computer="コンピューター:  %s,  %s",
    listing_status="ライターの状態を一覧表示しています...",
    listing_metadata="ライターのメタデータを一覧表示しています...",
    writers_listed="%d 個のライターが一覧表示されました。",
    status_label="- 状態: ",
    failure_code_label="- ライターのエラー コード: ",
    ds_writer_id_label="- ライター ID: ",
    ds_instance_id_label="- インスタンス ID: ",
    unknown_error_code="<不明なエラー コード>",
    metadata_labels={
        "writer_id": "- ライター ID   = ",
        "instance_id": "- ライター インスタンス ID = ",
        "restore_events": "- 復元イベントのサポート = ",
        "restore_conditions": "- ライターの復元条件 = ",
        "restore_method": "- 復元方法 = ",
        "reboot": "- 復元後に再起動が必要 = ",
        "component": "+ コンポーネント ",
        "name": "- 名前: ",
        "logical_path": "- 論理パス: ",
        "full_path": "- 完全パス: ",
        "caption": "- キャプション: ",
        "type": "- 種類: ",
        "selectable": "- 選択可能: ",
        "top_level": "- 最上位: ",
        "notify": "- バックアップ完了時に通知: ",
        "components": "- コンポーネント:",
        "file_list": "- ファイル一覧: パス = %s, ファイル指定 = %s",
        "paths": "- このコンポーネントの影響を受けるパス:",
        "volumes": "- このコンポーネントの影響を受けるボリューム:",
        "dependencies": "- コンポーネントの依存関係:",
        "excluded": "- 除外されたファイル:",
    },
    date_format="%Y/%m/%d %H:%M:%S",
    strip_date_zeros=False,
)

FR_FR = Locale(
    name="fr-FR",
    oem_code_page=850,
    ansi_code_page=1252,
    vssadmin_banner=(
        "vssadmin 1.1 - Outil ligne de commande d\u2019administration du service de clich\u00e9 instantan\u00e9 de volume",
        "(C) Copyright 2001-2013 Microsoft Corp.",
    ),
    vssadmin_waiting=(),
    writer_name_label="Nom du r\u00e9dacteur : ",
    writer_id_label="ID du r\u00e9dacteur : ",
    instance_id_label="ID de l\u2019instance du r\u00e9dacteur : ",
    state_label="\u00c9tat : ",
    last_error_label="Derni\u00e8re erreur : ",
    state_words={
        0: "Inconnu",
        1: "Stable",
        2: "En attente de gel",
        3: "En attente de d\u00e9gel",
        4: "En attente de post-instantan\u00e9",
        5: "En attente d\u2019ach\u00e8vement",
    },
    failed_word="\u00c9chec",
    error_words={
        "no_error": "Aucune erreur",
        "retryable": "Erreur renouvelable",
        "non_retryable": "Erreur non renouvelable",
        "timed_out": "D\u00e9lai d\u00e9pass\u00e9",
        "not_responding": "Ne r\u00e9pond pas",
        "inconsistent": "Clich\u00e9 instantan\u00e9 incoh\u00e9rent",
        "out_of_resources": "Ressources insuffisantes",
        "unexpected": "Erreur inattendue",
    },
    diskshadow_banner=("Microsoft DiskShadow version 1.0", "Copyright (C) 2013 Microsoft Corporation"),
    on_computer="Sur l\u2019ordinateur :  %s,  %s",
    listing_status="Liste de l\u2019\u00e9tat des r\u00e9dacteurs...",
    listing_metadata="Liste des m\u00e9tadonn\u00e9es des r\u00e9dacteurs...",
    writers_listed="%d r\u00e9dacteurs r\u00e9pertori\u00e9s.",
    status_label="- \u00c9tat : ",
    failure_code_label="- Code d\u2019\u00e9chec du r\u00e9dacteur : ",
    ds_writer_id_label="- ID du r\u00e9dacteur : ",
    ds_instance_id_label="- ID de l\u2019instance : ",
    date_format="%d/%m/%Y %H:%M:%S",
    strip_date_zeros=False,
)

LOCALES = {locale.name: locale for locale in (EN_US, JA_JP, FR_FR)}


def get_locale(name):
    try:
        return LOCALES[name]
    except KeyError:
        raise ValueError("unknown locale %r (the lab knows %s)" % (name, ", ".join(sorted(LOCALES)))) from None


def codec(code_page):
    """Python's codec name of a Windows code page (``cp932``, ``cp437``, ``utf-8`` for 65001)."""
    return "utf-8" if int(code_page) == 65001 else "cp%d" % int(code_page)


def console_bytes(text, code_page):
    """The bytes a native tool writes to a redirected console: CRLF line ends, text in the OEM code page.

    Characters the code page lacks get WideCharToMultiByte's best-fit replacement, else ``?``.
    """
    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    name = codec(code_page)
    out = []
    for char in text:
        try:
            out.append(char.encode(name))
        except UnicodeEncodeError:
            out.append(BEST_FIT.get(char, "?").encode(name))
    return b"".join(out)


def agent_decode(data, code_page):
    """What PowerShell makes of a native tool's bytes when ``[Console]::OutputEncoding`` is ``code_page``.

    Undecodable bytes become U+FFFD, as .NET's decoders do.
    """
    return data.decode(codec(code_page), errors="replace")
