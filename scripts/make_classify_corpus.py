"""Build the invented classification corpus (issue 14) from tests/data/classify/phrases.txt.

Writes ``tests/data/classify/train.tsv`` and ``heldout.tsv`` in the format of
``../shared/classify_cases.tsv`` (``code<TAB>request_type<TAB>text``, no header). Each issue
phrase is wrapped in styles seen in 12345 traffic -- a message-board letter (title, background,
a legal citation, a side issue or a hypothetical hazard, the request at the end), a hotline
transcription, a colloquial one-liner without punctuation, typos, traditional characters.
Places and people are invented (some place names contain category words: 梧桐里, 灯塔, 火炬).
The last two phrases of every code go to heldout.tsv only (about a third of the texts), so the
held-out texts share no issue phrase with the training texts. Deterministic (seeded).

Run: ``.venv/bin/python scripts/make_classify_corpus.py``
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import opencc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "classify"
PLACES = ("梧桐里小区", "灯塔社区", "火炬街道", "桥头村", "樟树湾小区", "清泉路", "金井巷",
          "油坊村", "花园路", "水厂路", "青禾市柳湾区", "东坪区", "南渚县石桥镇", "杏林街道",
          "云溪村", "和平新村", "学府苑小区", "锦绣华府")  # fmt: skip
ENDINGS = {
    "complaint": ("请有关部门尽快处理。", "希望相关部门督促解决。", "恳请主管部门过问一下。"),
    "consult": ("请问应该怎么办？", "想咨询一下具体政策。", "麻烦告知一下办理流程。"),
    "report": ("请依法查处。", "举报，请相关部门调查处理。", "希望有关部门严查。"),
    "suggestion": ("建议有关部门研究一下。", "恳请采纳这个建议。", "希望政府考虑。"),
    "help": ("请赶紧派人来帮帮忙！", "快来人帮帮我们！", "急！请尽快派人来！"),
    "praise": ("特此表扬！", "真心感谢！", "点赞！"),
}
BACKGROUND = ("我是{place}的居民，在这里住了十几年。", "这个问题已经反映过好几次了。",
              "{place}住的大多是老人和孩子。", "我们多次找过社区，答复都是在协调。")  # fmt: skip
CITATIONS = ("根据《信访工作条例》，群众反映的问题应当依法及时处理。",
             "《民法典》规定，民事主体的合法权益受法律保护。",
             "按照首问负责制，请相关部门不要推诿。")  # fmt: skip
SIDE = ("另外门口的路灯也有点暗。", "旁边绿化带的杂草也很久没修剪了。", "路上还有几个小坑。",
        "小区里停车也比较乱。")  # fmt: skip
HYPOTHETICAL = ("一旦发生火灾后果不堪设想。", "万一有人摔伤了谁负责。", "差点出了大事。")
TYPOS = (("已经", "以经"), ("再", "在"), ("的", "得"), ("社保", "社宝"), ("这个", "这各"),
         ("反映", "反应"), ("现在", "现再"))  # fmt: skip
KIND_WORD = {"complaint": "投诉", "consult": "咨询", "report": "举报", "suggestion": "建议",
             "help": "求助", "praise": "表扬"}  # fmt: skip
STYLES = ("letter", "hotline", "oneliner", "typo", "traditional")


def _first_clause(phrase: str) -> str:
    return phrase.replace("，", "，\n").splitlines()[0].rstrip("，")


def render(style: str, code: str, kind: str, phrase: str, rng: random.Random) -> str:
    place = rng.choice(PLACES)
    ending = rng.choice(ENDINGS[kind])
    if style == "letter":
        title = f"关于{place}{_first_clause(phrase)}的{KIND_WORD[kind]}"
        body = rng.choice(BACKGROUND).format(place=place) + phrase + "。"
        if code != "X9999" and rng.random() < 0.5:
            body += rng.choice(SIDE)
        if code != "X9999" and kind != "praise" and rng.random() < 0.3:
            body += rng.choice(HYPOTHETICAL)
        body += rng.choice(CITATIONS) if kind not in ("praise", "help") else ""
        return f"{title} {body}{ending}"
    if style == "hotline":
        return f"市民来电：{place}的居民反映，{phrase}。{ending}"
    if style == "oneliner":
        tail = {"complaint": " 谁来管管", "help": " 急", "consult": " 咋办啊"}.get(kind, "")
        return f"{place} {phrase.replace('，', ' ')}{tail}"
    if style == "typo":
        text = f"{place}这边{phrase}，{ending}"
        for right, wrong in rng.sample(TYPOS, 3):
            text = text.replace(right, wrong, 1)
        return text
    s2t = opencc.OpenCC("s2t")
    return str(s2t.convert(f"市民來電：{place}{phrase}。{ending}"))


def main() -> None:
    rng = random.Random(14)
    phrases: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in (DATA / "phrases.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, kind, phrase = line.split("|", 2)
            phrases[code].append((kind, phrase))
    out: dict[str, list[str]] = {"train": [], "heldout": []}
    seen: set[str] = set()
    for code, items in phrases.items():
        for n, (kind, phrase) in enumerate(items):
            split = "heldout" if n >= len(items) - 2 else "train"
            for style in rng.sample(STYLES, 2 if split == "heldout" else 3):
                text = render(style, code, kind, phrase, rng)
                if text not in seen:
                    seen.add(text)
                    out[split].append(f"{code}\t{kind}\t{text}")
    for split, lines in out.items():
        (DATA / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{split}: {len(lines)} texts")


if __name__ == "__main__":
    main()
