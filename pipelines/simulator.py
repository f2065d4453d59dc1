"""A seeded, deterministic province simulator: reports, health-form submissions, weather warnings.

``generate(config)`` returns the events (in the order they are sent) and ``manifest(events,
config)`` what the pipeline should make of them, so a test or the demo can reconcile counts
downstream. Everything is drawn from one ``random.Random(seed)``: the same config gives the same
events, byte for byte (pass ``start`` to pin the time window; by default it ends now).

What it makes:

- **reports** at real village codes (``pipelines.divisions``), written the way residents
  and grid workers write (colloquial frames, addresses, emoji, the odd typo) for every category
  of ``data/taxonomy.csv``; every text is checked to classify (``pipelines.classify``) to the
  category it was written for, so counts per category reconcile.
  Handling steps ACCEPT → DISPATCH → RESOLVE → VERIFY → CLOSE for a share of them (some sent
  late, after later events). Deliberate near-duplicates (same category, same community, within
  an hour and 150 m of the first, so every pair is within the 并单 window and distance) for 并单.
- **bad events** (``bad_fraction`` of the reports), each with exactly one defect and the reason
  code the pipeline gives it: unknown region, empty text, bad ID check digit, future timestamp
  (``pipelines.reports``), not Avro, unknown schema id, another topic's schema (``codec``).
- **form submissions** of a health campaign (``epi-fever-check``) over communities of 2,000-3,000
  registered residents, with resubmissions and abnormal answers (fever, symptoms).
- **weather warnings** with valid hazard/level pairs (``data/weather_warnings.csv``), updates
  and cancellations, keyed so that an Update/Cancel follows its Alert.
- **the closed loop** (issue 19; off unless asked for, :meth:`SimConfig.closed_loop`): 回访
  (REVISIT after CLOSE, with a rating and whether the resident says it was solved; a
  dissatisfied, unsolved rating reopens the order, which is reworked and revisited again),
  转派 (TRANSFER to another department while dispatched; some orders three times: 问题工单),
  repeat complaints (the same reporter id, so the same salted hash, and category, through
  another channel, hours or days later) and seeded hotspots (a burst of grid-patrol reports in
  one grid and category in the last two days against a quiet baseline weeks before). Reports
  before the window (``history_days``) carry no handling steps, so what the worker's SLA scan
  makes of them does not depend on when it runs. Their expected figures: :func:`expected_kpis`,
  :func:`expected_supervision`, :func:`expected_repeats`, :func:`expected_hotspots`.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipelines import classify as classifier
from pipelines import (
    closedloop,
    codec,
    contracts,
    divisions,
    hotspots,
    reports,
    taxonomy,
    workorders,
)
from pipelines.errors import ConfigError
from pipelines.pii import id_check_char

CST = timezone(timedelta(hours=8))
DATA_DIR = Path(__file__).parent / "data"
FORM_ID = "epi-fever-check"
FORM_VERSION = 3
FEVER_C = 37.3
UNKNOWN_SCHEMA_ID = 2_000_000_001
ACTIONS = ("ACCEPT", "DISPATCH", "RESOLVE", "VERIFY", "CLOSE")
#: every handling step the simulator writes (TRANSFER and REVISIT: the closed loop)
STEP_ACTIONS = (*ACTIONS, "TRANSFER", "REVISIT")
CHANNELS = ("group_message", "one_click", "one_click", "hotline", "app", "grid_patrol")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Bad report kinds and the dead-letter reason each one gets.
BAD_KINDS: dict[str, str] = {
    "unknown_region": reports.UNKNOWN_REGION,
    "empty_description": reports.EMPTY_DESCRIPTION,
    "bad_id_number": reports.BAD_ID_NUMBER,
    "future_timestamp": reports.BAD_TIMESTAMP,
    "not_avro": codec.NOT_FRAMED,
    "unknown_schema_id": codec.UNKNOWN_SCHEMA,
    "wrong_schema": codec.WRONG_SUBJECT,
}
RAW_KINDS = ("not_avro", "unknown_schema_id", "wrong_schema")
PROVINCE_BOX = {  # rough lat/lon boxes, for plausible coordinates of a village
    "43": (24.7, 30.0, 108.9, 114.2),
    "61": (31.8, 39.5, 105.6, 111.2),
    "44": (20.3, 25.4, 109.8, 117.2),
}
DEFAULT_BOX = (24.0, 34.0, 105.0, 118.0)

# --- how people write ------------------------------------------------------------------------

#: Problem statements per category; frames, addresses, emoji and typos are added around them.
CORES: dict[str, tuple[str, ...]] = {
    "P0101": (
        "井盖不见了，黑黢黢一个洞",
        "下水道井盖碎了一半",
        "雨水井盖移位了，车一压就响",
        "窨井盖塌陷下去了",
        "污水井的盖子被人偷了",
        "井盖翘起来了差点绊倒老人",
    ),
    "P0102": (
        "路灯不亮好几天了",
        "路灯坏了晚上黑漆漆的",
        "这排路灯白天也一直亮着",
        "路灯杆歪了快倒了",
        "那几盏路灯一闪一闪的",
    ),
    "P0103": ("消防栓在漏水", "消防栓被撞坏了一直喷水", "水表井的盖板坏了", "消火栓锈得打不开了"),
    "P0104": (
        "电线杆歪了",
        "电线垂下来快挨到地面了",
        "楼下有人乱拉飞线",
        "通信交接箱门被撬坏了",
        "电线杆倾斜很厉害",
    ),
    "P0201": (
        "路面坑坑洼洼的",
        "马路上好大一个坑",
        "人行道的砖松动了踩上去溅水",
        "路面破损严重，骑车颠得要命",
        "道路坑洼不平，到处是坑",
    ),
    "P0202": (
        "十字路口的信号灯故障，一直不亮",
        "信号灯故障一直闪黄灯",
        "交通标志牌被撞歪了",
        "路边护栏损坏了倒在地上",
    ),
    "P0203": ("公交站亭的玻璃碎了", "公交站牌被风刮倒了", "公交站台的顶棚破了个洞"),
    "P0301": (
        "公厕太脏了臭得很",
        "公共厕所没水冲不了",
        "公厕的门坏了关不上",
        "厕所堵了好几天没人管",
    ),
    "P0302": (
        "垃圾桶满了溢出来了",
        "垃圾桶坏了盖子都没了",
        "这里的垃圾箱被人搬走了",
        "垃圾桶满溢好几天没人清",
    ),
    "P0401": (
        "大树倒了压在路边",
        "树枝断了挂在半空",
        "行道树枯死了怕砸人",
        "树枝太长挡住窗户了需要修剪",
    ),
    "P0402": ("绿地被踩得光秃秃的", "草坪被人毁了", "绿化带黄土裸露起灰"),
    "P0501": (
        "房子墙体开裂了",
        "楼外墙的瓷砖脱落了",
        "老房子墙裂了好几道缝像危房",
        "外墙皮掉下来了",
    ),
    "E0101": (
        "垃圾堆成山了没人清运",
        "有人乱倒垃圾臭气熏天",
        "生活垃圾堆了一个星期没人拉走",
        "路边垃圾成堆",
    ),
    "E0102": (
        "有人私搭乱建",
        "楼顶违章搭建了一个棚子",
        "邻居私自加建占了公共空间",
        "有人在绿地上违建",
    ),
    "E0103": ("路面全是油污", "马路上都是泥巴，脏得很", "路面很脏没人扫", "地上全是油渍滑得很"),
    "E0104": ("有人偷倒建筑垃圾", "渣土车撒了一路", "建筑垃圾乱倒在路边", "装修垃圾乱扔在空地上"),
    "E0105": ("有人在田里焚烧秸秆", "有人露天烧垃圾烟很大", "有人在烧树叶呛死人了"),
    "E0201": (
        "墙上贴满了小广告",
        "到处是牛皮癣广告",
        "有人乱张贴小广告",
        "电线杆上全是乱涂写的办证广告",
    ),
    "E0301": ("工地半夜还在施工吵得睡不着", "夜间施工噪音太大了", "施工震动太厉害了，楼都在晃"),
    "E0302": ("工地扬尘特别大", "工地裸土没有覆盖灰尘满天飞", "施工扬尘严重"),
    "E0401": (
        "流动摊贩占道经营",
        "店家把摊子摆到人行道上占道经营",
        "好多小摊占道摆摊",
        "门面店外经营堵住了路",
    ),
    "E0402": (
        "有车乱停堵住了消防通道",
        "车子乱停把人行道占了",
        "有辆僵尸车停了半年没动",
        "乱停车很严重",
    ),
    "E0403": ("广场舞音响太吵了", "楼下商铺音响噪音扰民", "邻居家的狗天天叫，噪音扰民"),
    "E0501": (
        "路上积水很深过不去",
        "下大雨内涝了水淹到膝盖",
        "下水道堵了污水往外冒",
        "道路积水严重车都熄火了",
    ),
    "E0502": ("水管爆了水一直往外冒", "自来水管爆裂了", "地面冒水，像是爆管了"),
    "E0503": ("路面塌陷了一个大洞", "马路突然塌了陷下去一块", "地陷了，很危险"),
    "E0504": ("着火了，浓烟滚滚", "楼里起火了冒黑烟", "有房子失火了"),
    "E0505": ("闻到很浓的煤气味", "燃气泄漏了，味道很大", "天然气管道漏气了"),
    "E0601": (
        "邻居之间吵架打起来了，需要调解",
        "租房押金房东一直不退，双方闹矛盾",
        "楼上楼下因为漏水闹纠纷",
        "家里闹矛盾纠纷需要调解",
    ),
    "E0602": (
        "有人在楼道里给电动车充电",
        "高空抛物差点砸到人",
        "楼道里堆满了杂物，消防隐患",
        "电动车推进电梯上楼充电，太危险",
    ),
    "E0603": (
        "独居老人好几天没出门了，麻烦去看看",
        "独居老人摔倒了没人照顾",
        "老人生病了需要帮助就医",
        "残疾人生活困难求助",
    ),
    "E0604": (
        "有人发热了想报告一下",
        "小区有人从外地回来没隔离",
        "核酸点在哪里，想做核酸",
        "有人聚集打麻将不戴口罩",
    ),
    "E0605": ("猕猴桃滞销了卖不出去", "稻田病虫害很严重", "田里灌溉没水了", "化肥农资涨价买不到"),
    "S0101": (
        "物业费年年涨，小区门禁坏了半年物业也不修",
        "业委会选举物业一直在阻挠",
        "物业擅自动用维修基金",
    ),
    "S0102": (
        "交房三年了房产证还没办下来",
        "开发商延期交房一年多没有说法",
        "新房渗水开发商一直不修",
    ),
    "S0103": ("拆迁安置房拖了两年还没交", "征收补偿标准一直不公布", "过渡费停发好几个月了"),
    "S0201": ("包工头拖欠我们半年工资不给", "工地干完活老板不结工资", "讨薪讨了三个月还没拿到钱"),
    "S0202": ("养老金这个月没有按时发放", "社保断缴了想问怎么补交", "医保报销材料交了半年还没到账"),
    "S0203": (
        "公司不签劳动合同也不给加班费",
        "上班受伤了厂里不给认定工伤",
        "被公司辞退一分经济补偿都没有",
    ),
    "S0301": ("孩子入学被划到很远的学区", "小区配套幼儿园学位不够", "转学手续学校一直不给办"),
    "S0302": ("学校强制收校服费和课后服务费", "老师在外面办补课班收费", "无证培训机构给学生上课"),
    "S0401": ("医院急诊排了四个小时才看上", "村卫生室关门了没有村医", "医生态度很差不给好好看病"),
    "S0501": ("健身房关门跑路了预付卡不退款", "网上买的东西商家不给退货", "快递丢件了快递公司不赔"),
    "S0502": ("饭店后厨苍蝇乱飞卫生很差", "超市卖过期变质的酸奶", "无证餐饮在居民楼里做外卖"),
    "S0503": ("景区小卖部不明码标价乱收费", "停车场收费标准不公示", "药店哄抬口罩价格"),
    "S0601": (
        "建议开通一条到高铁站的公交线路",
        "公交车班次太少要等一个小时",
        "出租车司机拒载还绕路",
    ),
    "S0602": ("断头路六年了还没打通", "村里通村公路还是泥巴路想硬化", "这条路修路工程拖了两年"),
    "S0701": ("化工厂夜里偷排废水到河里", "家具厂喷漆废气刺鼻", "工厂烟囱排放黑色废气"),
    "S0702": (
        "楼下餐馆油烟直排熏得不敢开窗",
        "烧烤店油烟没有净化设施",
        "饭店烟道对着居民窗户排油烟",
    ),
    "S0801": ("茶楼包厢里有人聚众赌博", "有人拉老人投资高息返利疑似非法集资", "小区里有人搞传销"),
    "S0802": ("邻居养大型犬不拴绳吓人", "菜市场后面流浪狗咬人", "养狗扰民还随地大小便"),
    "S0901": (
        "想咨询残疾人补贴怎么申请",
        "低保申请被退回了想重新核查",
        "八十岁老人的高龄津贴怎么领",
    ),
    "S1001": (
        "宅基地审批卡了两年没批下来",
        "村里土地流转的分红没有我的份",
        "土地承包合同到期村里要收回",
    ),
    "S1101": (
        "反对在小区旁边建垃圾转运站的规划",
        "学校旁边规划建变电站请重新选址",
        "规划调整容积率损害业主利益",
    ),
    "S1102": ("小区交房三年天然气还没通", "老旧小区想申请加装电梯", "我们这里冬天没有集中供暖"),
    "S1201": ("政务服务中心办居住证要跑好几趟", "户口迁移办理窗口态度很差", "开个证明要盖好几个章"),
    "S1202": (
        "村干部截留惠农补贴村务不公开",
        "工程招标涉嫌量身定制请纪委调查",
        "村主任挪用集体资金",
    ),
    "S1301": ("景区门票涨价没有公告", "体育中心游泳馆平时不对市民开放", "旅游团导游强迫购物"),
    "S1401": ("小区停电五次了都没通知", "从昨天开始停水一直没来", "这个月水费突然涨了四倍"),
    "S1501": ("企业办事审批慢营商环境差", "建议引进电商产业带动就业", "园区企业融资难希望政府支持"),
    "X9999": ("有个事想反映一下，麻烦联系我", "想咨询一下，请联系我", "你好，在吗，有点事情"),
}
OPENERS = ("", "", "你好，", "您好！", "师傅你好，", "网格员，", "麻烦问下，", "我要反映个问题：",
           "【随手拍】", "大家看下，", "喂，", "反映一下：")  # fmt: skip
WHERE = (
    "{place}这边",
    "{place}门口",
    "在{place}，",
    "{place}附近",
    "{place}旁边那块",
    "就在{place}",
)
CLOSERS = ("", "", "，麻烦尽快处理", "，请相关部门管一管", "！！", "，谢谢", "，都好几天了",
           "，快来人看看吧", "。希望早点解决", "，拜托了", "。。。", "，急！")  # fmt: skip
EMOJI = ("", "", "", "🙏", "😡", "😭", "👍", "⚠️", "🙏🙏", "😓")
#: common slips of the pinyin keyboard (applied to frames only, never to the problem itself)
TYPOS = {"麻烦": "麻凡", "处理": "处里", "谢谢": "写写", "附近": "付近", "门口": "们口"}
ROADS = ("人民路", "解放路", "建设路", "中山路", "新华街", "文化路", "光明巷", "东风路", "滨江路",
         "和平街", "幸福路", "团结巷")  # fmt: skip
PLACES = ("菜市场", "小学", "卫生院", "村委会", "广场", "超市", "老街", "桥头", "公交站", "小区")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉梅德福文斌婷"
ROLES = {"ACCEPT": "受理员", "DISPATCH": "受理员", "RESOLVE": "处置员", "VERIFY": "网格员",
         "CLOSE": "受理员", "TRANSFER": "处置员", "REVISIT": "回访员"}  # fmt: skip
#: minutes between a step and the one before it (RESOLVE: up to the category's SLA)
GAPS = {"ACCEPT": (2, 40), "DISPATCH": (5, 90), "VERIFY": (10, 240), "CLOSE": (5, 120),
        "TRANSFER": (10, 180), "REVISIT": (30, 480)}  # fmt: skip
REVISIT_DEPARTMENT = "12345政务服务便民热线"
#: 回访 ratings and their weights; after a rework the resident is dissatisfied more often
RATINGS = ("satisfied", "basically_satisfied", "dissatisfied", "unreachable")
RATING_WEIGHTS = (62, 18, 12, 8)
REWORK_RATING_WEIGHTS = (35, 15, 42, 8)
#: chance that a reached resident says the problem was solved, per rating
SOLVED_CHANCE = {"satisfied": 0.95, "basically_satisfied": 0.8, "dissatisfied": 0.3}
#: TRANSFER steps of a transferred order: 1 (weight 80), 2 (12) or 3 (8: a 问题工单)
TRANSFER_COUNTS = ((1, 2, 3), (80, 12, 8))
MAX_REWORKS = 3
TRANSFER_NOTES = (
    "不属于本单位职责，申请转派",
    "经核实属其他部门管辖",
    "权属单位变更，转相关部门办理",
)
REVISIT_NOTES = {
    "satisfied": ("群众表示满意", "问题已解决，群众满意"),
    "basically_satisfied": ("群众表示基本满意", "基本解决，希望加强巡查"),
    "dissatisfied": ("群众表示不满意", "群众反映问题仍未解决", "群众对办理态度不满意"),
    "unreachable": ("电话无人接听", "多次回访未联系上"),
}
#: reports of a seeded hotspot in the last two days, and of its quiet baseline weeks before
HOTSPOT_BURST = 8
HOTSPOT_BASELINE = 2
RESOLVE_NOTES = (
    "已现场处置完毕",
    "已安排人员维修",
    "已清理完毕",
    "已协调相关单位解决",
    "已处理，附照片",
)
VERIFY_NOTES = ("现场核查，问题已解决", "回访群众，表示满意", "核查属实，已整改")
SYMPTOMS = ("fever", "cough", "sore_throat", "fatigue", "diarrhea")
LEVEL_CN = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


#: the closed loop's fields of :meth:`SimConfig.closed_loop` (``govstream simulate --closed-loop``)
CLOSED_LOOP: dict[str, Any] = {
    "revisit_fraction": 0.8,
    "transfer_fraction": 0.06,
    "repeat_fraction": 0.03,
    "history_days": 30,
    "hotspots": 1,
}


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Counts are of *things* (reports, submissions, warnings); ``count``
    instead caps the total number of events (the first ``count`` in sending order)."""

    seed: int = 1
    reports: int = 1000
    forms: int | None = None  # default: as many submissions as reports
    warnings: int | None = None  # default: one per 200 reports, at least 2
    minutes: float = 60.0
    start: datetime | None = None  # default: the window ends now
    region: str = ""  # a division code prefix ("43", "4306"); "" = every province with data
    bad_fraction: float = 0.03
    duplicate_fraction: float = 0.05
    handled_fraction: float = 0.6
    late_fraction: float = 0.05
    resubmit_fraction: float = 0.1
    abnormal_fraction: float = 0.04
    communities: int = 12
    count: int | None = None
    duplicate_window_s: float = 7200.0
    duplicate_distance_m: float = 300.0
    # the closed loop (issue 19): all off by default, so other configs' events stay the same
    revisit_fraction: float = 0.0  # closed orders called back (回访)
    transfer_fraction: float = 0.0  # dispatched orders transferred (转派)
    repeat_fraction: float = 0.0  # reports repeating an earlier one of their reporter
    history_days: int = 0  # days before the window that repeats and hotspots reach back
    hotspots: int = 0  # seeded hotspots (a grid and category)

    def __post_init__(self) -> None:
        for name in (
            "bad_fraction",
            "duplicate_fraction",
            "handled_fraction",
            "late_fraction",
            "resubmit_fraction",
            "abnormal_fraction",
            "revisit_fraction",
            "transfer_fraction",
            "repeat_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value}")
        if self.reports < 0 or (self.forms or 0) < 0 or (self.warnings or 0) < 0:
            raise ConfigError("counts must not be negative")
        if self.minutes <= 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if self.count is not None and self.count < 0:
            raise ConfigError(f"count must not be negative, got {self.count}")
        if self.start is not None and self.start.tzinfo is None:
            raise ConfigError("start needs a time zone")
        if self.history_days < 0 or self.hotspots < 0:
            raise ConfigError("history_days and hotspots must not be negative")

    @property
    def loop(self) -> bool:
        """Whether any part of the closed loop is on."""
        return bool(
            self.revisit_fraction
            or self.transfer_fraction
            or self.repeat_fraction
            or self.history_days
            or self.hotspots
        )

    @classmethod
    def closed_loop(cls, **kwargs: Any) -> SimConfig:
        """A config with the closed loop on (what ``make demo`` simulates): 80 % of closed
        orders revisited, 6 % of dispatched ones transferred, 3 % of reports repeats, 30 days
        of history and one seeded hotspot; ``kwargs`` override any field."""
        return cls(**{**CLOSED_LOOP, **kwargs})

    @classmethod
    def for_count(cls, count: int, **kwargs: Any) -> SimConfig:
        """A config whose events are cut at ``count``: about 1/3 reports (with their steps),
        the rest mostly form submissions, a few warnings."""
        return cls(
            reports=max(1, count * 7 // 20),
            forms=max(1, count * 3 // 5),
            warnings=max(2, count // 1000),
            count=count,
            **kwargs,
        )

    @property
    def n_forms(self) -> int:
        return self.reports if self.forms is None else self.forms

    @property
    def n_warnings(self) -> int:
        return max(2, self.reports // 200) if self.warnings is None else self.warnings

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        length = timedelta(minutes=self.minutes)
        if self.start is not None:
            start = self.start.astimezone(UTC)
        else:
            end = (now or datetime.now(UTC)).replace(microsecond=0)
            start = end - length
        return start, start + length

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        return data


@dataclass
class SimEvent:
    """One event to send. ``value`` is the JSON shape upstream apps send (``from_json`` input);
    ``raw`` bytes (or ``frame_as``: the value serialized with another topic's schema) make the
    decode-level bad events. ``meta`` holds what the manifest needs (not sent)."""

    topic: str
    key: str
    emit_ms: int
    value: dict[str, Any] | None = None
    raw: bytes | None = None
    frame_as: str | None = None
    expected: str = "ok"  # or the dead-letter reason code
    meta: dict[str, Any] = field(default_factory=dict)

    def json_line(self) -> str:
        """The dry-run line: the value, or a description of the raw bytes."""
        if self.raw is None and self.frame_as is None:
            return json.dumps(self.value, ensure_ascii=False)
        data: dict[str, Any] = {"topic": self.topic, "key": self.key, "reason": self.expected}
        if self.raw is not None:
            data["value_b64"] = base64.b64encode(self.raw).decode()
        else:
            data["frame_as"] = self.frame_as
            data["record"] = self.value
        return json.dumps(data, ensure_ascii=False)


# --- helpers ---------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=CST).isoformat(timespec="seconds")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _name(rng: random.Random) -> str:
    given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
    return rng.choice(SURNAMES) + given


def _phone(rng: random.Random) -> str:
    return rng.choice(("13", "15", "17", "18", "19")) + "".join(rng.choices("0123456789", k=9))


def id_number(rng: random.Random, area: str, *, valid: bool = True) -> str:
    """An 18-character resident ID number of someone registered in ``area`` (6 digits)."""
    birth = datetime(1940, 1, 1) + timedelta(days=rng.randrange(0, 65 * 365))
    first17 = f"{area}{birth:%Y%m%d}{rng.randrange(0, 1000):03d}"
    check = id_check_char(first17)
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return first17 + check


def _centre(code: str) -> tuple[float, float]:
    """A stable pseudo-location of a village inside its province's box."""
    lat0, lat1, lon0, lon1 = PROVINCE_BOX.get(code[:2], DEFAULT_BOX)
    h = random.Random(code)  # seeded by the code only: the same village, the same place
    return lat0 + (lat1 - lat0) * h.random(), lon0 + (lon1 - lon0) * h.random()


def _offset(lat: float, lon: float, metres: float, rng: random.Random) -> tuple[float, float]:
    angle = rng.random() * 2 * math.pi
    dlat = metres * math.cos(angle) / 111_320
    dlon = metres * math.sin(angle) / (111_320 * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)


def load_warning_types(
    path: Path = DATA_DIR / "weather_warnings.csv",
) -> list[tuple[str, str, list[str]]]:  # noqa: E501
    """(hazard symbol, Chinese name, valid levels) of the 14 CMA warning signals."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            (r["hazard_en"], r["hazard"], r["levels"].split("|")) for r in csv.DictReader(handle)
        ]


#: how a report reaches the hotline besides a resident's quick message (issue 14, item 5): a
#: 12345 operator's work-order summary, a message-board letter (title, background, request),
#: and the message in traditional characters (OpenCC s2t); weights of the styles, in order
STYLES = (("message", 0.55), ("operator", 0.2), ("letter", 0.15), ("traditional", 0.1))
OPERATOR = "来电人反映：{where}{core}。诉求：{ask}"
LETTER = "关于{place}{what}的{kind} 我是{place}的居民，在这里住了{years}年。{core}，{since}。{ask}"
ASKS = ("请相关部门尽快核实处理。", "希望有关部门尽快解决。", "恳请主管部门过问一下。",
        "请派人来看看。")  # fmt: skip
KINDS = ("投诉", "反映", "建议", "求助")
SINCE = ("已经好几天了", "反映过好几次了", "一直没人管", "影响很大")
_S2T: Any = None


def _traditional(text: str) -> str:
    global _S2T
    if _S2T is None:
        import opencc

        _S2T = opencc.OpenCC("s2t")
    return str(_S2T.convert(text))


def _styled(style: str, core: str, place: str, where: str, rng: random.Random) -> str:
    if style == "operator":
        return OPERATOR.format(where=where, core=core, ask=rng.choice(ASKS))
    what = "的问题" if len(core) > 12 else core
    return LETTER.format(
        place=place, what=what.removeprefix("的"), kind=rng.choice(KINDS),
        years=rng.choice(("三", "五", "十几", "二十多")), core=core, since=rng.choice(SINCE),
        ask=rng.choice(ASKS),
    )  # fmt: skip


def report_text(code: str, rng: random.Random, place: str) -> str:
    """A text for category ``code`` in one of :data:`STYLES` (a resident's message with
    colloquial frames, emoji and the odd typo; an operator's summary; a message-board letter;
    the message in traditional characters) that the classifier files under ``code``; a styled
    text that the classifier files elsewhere gives way to the message, so the styles' shares
    are a little below their weights.

    The message is drawn from ``rng`` as always; the style and its words come from a
    generator seeded by that message, so adding styles changed no other simulated event."""
    cores = CORES[code]
    for _attempt in range(8):
        core = rng.choice(cores)
        opener = rng.choice(OPENERS)
        where = rng.choice(WHERE).format(place=place) if rng.random() < 0.6 else ""
        closer = rng.choice(CLOSERS)
        if rng.random() < 0.15:
            typo = rng.choice(sorted(TYPOS))
            opener, closer = opener.replace(typo, TYPOS[typo]), closer.replace(typo, TYPOS[typo])
        text = f"{opener}{where}{core}{closer}{rng.choice(EMOJI)}"
        if classifier.classify(text).code == code:
            local = random.Random(text)
            pick = local.random()
            style = next((name for name, upto in _cumulative(STYLES) if pick < upto), "message")
            styled = text
            if style in ("operator", "letter"):
                styled = _styled(style, core, place, where, local)
            elif style == "traditional":
                styled = _traditional(text)
            return styled if classifier.classify(styled).code == code else text
    return rng.choice(cores)  # every core classifies correctly on its own (tested)


def _cumulative(weights: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    out, total = [], 0.0
    for name, weight in weights:
        total += weight
        out.append((name, total))
    return out


# --- the generator ---------------------------------------------------------------------------


class _Sim:
    def __init__(self, config: SimConfig, now: datetime | None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.start, self.end = config.window(now)
        self.start_ms, self.end_ms = _ms(self.start), _ms(self.end)
        roots = [config.region] if config.region else [p.code[:2] for p in divisions.provinces()]
        self.villages: list[divisions.Division] = []
        for root in roots:
            if not divisions.is_known(root):
                raise ConfigError(f"unknown region {root!r}: no such division in the data")
            self.villages += divisions.villages_under(root)
        if not self.villages:
            raise ConfigError(f"region {config.region!r} has no villages in the data")
        self.categories = [c.code for c in taxonomy.all()]
        self.departments = sorted({c.department for c in taxonomy.all()})
        self.events: list[SimEvent] = []
        self.open: dict[str, list[dict[str, Any]]] = defaultdict(list)  # dedupe key → orders
        self.clusters: dict[str, set[str]] = {}  # first report → it and its duplicates
        self.seq = 0

    def _time(self) -> int:
        return self.rng.randrange(self.start_ms, self.end_ms)

    def add(self, event: SimEvent) -> None:
        event.meta["seq"] = self.seq
        self.seq += 1
        self.events.append(event)

    # reports -----------------------------------------------------------------------------

    def _person(self, village: divisions.Division) -> dict[str, Any]:
        rng = self.rng
        person: dict[str, Any] = {
            "id": rng.choice(("wx-o", "wecom-", "app-"))
            + uuid.UUID(int=rng.getrandbits(64)).hex[-12:],
            "name": _name(rng),
            "phone": _phone(rng),
        }
        if rng.random() < 0.4:
            person["id_number"] = id_number(rng, village.code[:6])
        return person

    def _address(self, village: divisions.Division) -> str:
        rng = self.rng
        names = [d.name for d in divisions.chain(village.code)]
        short = names[-1].removesuffix("居委会").removesuffix("村委会")
        spot = (
            f"{rng.choice(ROADS)}{rng.randrange(1, 400)}号"
            if rng.random() < 0.6
            else (f"{rng.randrange(1, 12)}组{rng.choice(PLACES)}旁")
        )
        prefix = "".join(names[1:-1]) if rng.random() < 0.5 else names[-2]
        return f"{prefix}{short}{spot}"

    def _place_free(self, key: str, order: dict[str, Any]) -> bool:
        """No open order of the same category and community is near it in time and place."""
        return self._place_free_among(self.open[key], order)

    def _place_free_among(self, orders: list[dict[str, Any]], order: dict[str, Any]) -> bool:
        cfg = self.config
        found = reports.find_duplicate(
            orders, order, cfg.duplicate_window_s, cfg.duplicate_distance_m
        )
        return found is None

    def _submit(
        self,
        occurred: int,
        village: divisions.Division,
        code: str,
        like: dict[str, Any] | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        if channel is None:
            channel = rng.choice(CHANNELS)
        event: dict[str, Any] = {
            "event_id": _uuid(rng),
            "report_id": f"{village.code[:6]}-{occurred // 1000}-{rng.randrange(10**8):08d}",
            "action": "SUBMIT",
            "occurred_at": _iso(occurred),
            "channel": channel,
            "region_code": village.code,
            "reporter": self._person(village),
        }
        if channel == "grid_patrol":
            event["grid_id"] = f"{village.code}-{rng.randrange(1, 9):02d}"
        if like is not None:  # a near-duplicate of an earlier report: same address, ≤150 m
            event["address"] = like["address"]
            if like.get("lat") is not None and channel != "hotline":
                event["lat"], event["lon"] = _offset(
                    like["lat"], like["lon"], rng.uniform(5, 150), rng
                )
        else:
            event["address"] = self._address(village)
            if channel != "hotline" or rng.random() < 0.3:
                lat, lon = _centre(village.code)
                event["lat"], event["lon"] = _offset(lat, lon, rng.uniform(0, 2500), rng)
        place = event["address"][-8:] if rng.random() < 0.5 else rng.choice(PLACES)
        event["description"] = report_text(code, rng, place)
        if channel in ("app", "one_click") and code != "X9999" and rng.random() < 0.5:
            event["category_hint"] = code
        if rng.random() < 0.5 and channel != "hotline":
            event["images"] = [
                f"https://img.example.gov.cn/r/{event['report_id']}/{i}.jpg"
                for i in range(1, rng.randrange(2, 4))
            ]
        return event

    def _order(self, event: dict[str, Any], occurred: int) -> dict[str, Any]:
        return {
            "report_id": event["report_id"],
            "occurred_ms": occurred,
            "lat": event.get("lat"),
            "lon": event.get("lon"),
            "address": event.get("address", ""),
        }

    def reports(self) -> None:
        cfg, rng = self.config, self.rng
        times = sorted(self._time() for _ in range(cfg.reports))
        firsts: list[tuple[dict[str, Any], int, divisions.Division, str]] = []
        handled: set[str] = set()
        for occurred in times:
            roll = rng.random()
            if roll < cfg.bad_fraction:
                self._bad(occurred)
                continue
            # with the closed loop, only a first report without handling steps gets 并单
            # duplicates: which report of a cluster the pipeline takes for the first depends
            # on arrival across partitions, and the KPI views leave the others out
            pool = firsts[-50:]
            if cfg.loop:
                pool = [f for f in pool if f[0]["report_id"] not in handled]
            if roll < cfg.bad_fraction + cfg.duplicate_fraction and pool:
                first, first_ms, village, code = rng.choice(pool)
                later = first_ms + rng.randrange(60_000, 3_600_000)
                if later < self.end_ms:
                    event = self._submit(later, village, code, like=first)
                    # near its first report (and that one's other duplicates) only, so the
                    # pipeline links it the same way whatever order it processes them in
                    cluster = self.clusters[first["report_id"]]
                    key = reports.dedupe_key(code, village.code)
                    others = [o for o in self.open[key] if o["report_id"] not in cluster]
                    if self._place_free_among(others, self._order(event, later)):
                        cluster.add(event["report_id"])
                        self._emit_submit(event, later, village, code, first["report_id"])
                        continue
            code = rng.choice(self.categories)
            for _attempt in range(20):
                village = rng.choice(self.villages)
                event = self._submit(occurred, village, code)
                if self._place_free(
                    reports.dedupe_key(code, village.code), self._order(event, occurred)
                ):
                    break
            else:  # pragma: no cover - 20 places in a row taken: practically impossible
                continue
            self._emit_submit(event, occurred, village, code)
            self.clusters[event["report_id"]] = {event["report_id"]}
            firsts.append((event, occurred, village, code))
            if rng.random() < cfg.handled_fraction:
                self._steps(event, occurred, code)
                handled.add(event["report_id"])
        if cfg.repeat_fraction > 0:
            for _ in range(max(1, round(cfg.reports * cfg.repeat_fraction))):
                self._repeat()
        for _ in range(cfg.hotspots):
            self._hotspot()

    def _emit_submit(
        self,
        event: dict[str, Any],
        occurred: int,
        village: divisions.Division,
        code: str,
        duplicate_of: str | None = None,
        **extra: Any,
    ) -> None:
        key = reports.dedupe_key(code, village.code)
        self.open[key].append(self._order(event, occurred))
        meta = {
            "kind": "submit",
            "category": code,
            "department": taxonomy.get(code).department,
            "dedupe_key": key,
            "occurred_ms": occurred,
            "duplicate_of": duplicate_of,
            **extra,
        }
        self.add(SimEvent("report", event["report_id"], occurred, value=event, meta=meta))

    def _steps(self, submit: dict[str, Any], occurred: int, code: str) -> None:
        """Handling steps of a first report, cut at the window's end: the normal path, and
        with the closed loop on 转派 after DISPATCH, 回访 after CLOSE and, after a dissatisfied
        and unsolved rating (the state machine reopens the order), a rework and another
        callback. An order transferred or reworked has no late step: a step arriving after
        one it must precede (TRANSFER after RESOLVE, CLOSE after the reopening REVISIT) would
        be rejected by the state machine."""
        rng, cfg = self.rng, self.config
        category = taxonomy.get(code)
        county = submit["region_code"][:6]
        department = category.department
        queue = list(ACTIONS)
        made: list[SimEvent] = []
        at = occurred
        reworks = transfers = 0
        reopens = workorders.revisit_reopens
        while queue:
            action = queue.pop(0)
            low, high = GAPS.get(action, (20, max(30, int(category.sla_hours * 60))))
            at += rng.randrange(low, high + 1) * 60_000
            if at > self.end_ms:
                break
            by = {"RESOLVE": department, "TRANSFER": department, "REVISIT": REVISIT_DEPARTMENT}
            step: dict[str, Any] = {
                "event_id": _uuid(rng),
                "report_id": submit["report_id"],
                "action": action,
                "occurred_at": _iso(at),
                "channel": submit["channel"],
                "region_code": submit["region_code"],
                "operator": {
                    "id": f"op-{county}-{rng.randrange(1, 60):03d}",
                    "name": _name(rng),
                    "department": by.get(action, "综治中心"),
                    "role": ROLES[action],
                },
            }
            if action == "DISPATCH":
                step["assigned_department"] = department
            if action == "RESOLVE":
                step["note"] = rng.choice(RESOLVE_NOTES)
                step["images"] = [f"https://img.example.gov.cn/r/{submit['report_id']}/done.jpg"]
            if action == "VERIFY":
                step["note"] = rng.choice(VERIFY_NOTES)
            if action == "TRANSFER":
                department = rng.choice([d for d in self.departments if d != department])
                step["assigned_department"] = department
                step["note"] = rng.choice(TRANSFER_NOTES)
                transfers += 1
            if action == "REVISIT":
                rating, solved = self._rating(reworked=reworks > 0)
                step["satisfaction"], step["resident_solved"] = rating, solved
                step["note"] = rng.choice(REVISIT_NOTES[rating])
            late = rng.random() < cfg.late_fraction
            emit = at + (rng.randrange(10, 90) * 60_000 if late else 0)
            meta = {"kind": "step", "action": action, "late": late, "occurred_ms": at}
            made.append(SimEvent("report", submit["report_id"], emit, value=step, meta=meta))
            if action == "DISPATCH" and cfg.transfer_fraction > 0:
                if rng.random() < cfg.transfer_fraction:
                    queue[:0] = ["TRANSFER"] * rng.choices(*TRANSFER_COUNTS)[0]
            elif action == "CLOSE" and cfg.revisit_fraction > 0:
                if rng.random() < cfg.revisit_fraction:
                    queue.insert(0, "REVISIT")
            elif action == "REVISIT" and reopens(rating, solved) and reworks < MAX_REWORKS:
                reworks += 1  # 发回重办: dispatched, resolved, verified, closed, revisited again
                queue = ["DISPATCH", "RESOLVE", "VERIFY", "CLOSE"]
        for e in made:
            if transfers or reworks:
                e.meta["late"], e.emit_ms = False, e.meta["occurred_ms"]
            self.add(e)

    def _rating(self, *, reworked: bool) -> tuple[str, bool | None]:
        """A 回访 rating and whether the resident says it was solved (None: unreachable)."""
        rng = self.rng
        weights = REWORK_RATING_WEIGHTS if reworked else RATING_WEIGHTS
        rating = rng.choices(RATINGS, weights)[0]
        if rating == workorders.UNREACHABLE:
            return rating, None
        return rating, rng.random() < SOLVED_CHANCE[rating]

    def _free_submit(
        self,
        occurred: int,
        code: str,
        channel: str,
        *,
        village: divisions.Division | None = None,
        like: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], divisions.Division] | None:
        """A SUBMIT no other report is a 并单 duplicate of (nor it of one), or None after 20
        tries (a random village each unless ``village`` is given)."""
        for _attempt in range(20):
            place = village or self.rng.choice(self.villages)
            event = self._submit(occurred, place, code, like=like, channel=channel)
            if self._place_free(reports.dedupe_key(code, place.code), self._order(event, occurred)):
                return event, place
        return None

    def _repeat(self) -> None:
        """重复诉求: one person's report and, through another channel, the same problem again
        in the window: not a 并单 duplicate. With history the first report is 1 to 20 days
        earlier, before the window: the pipeline decides repeats in the order the reports
        arrive (workorders.find_repeat), and only the history, sent and processed first
        (:func:`split_history`, reconcile.send_history_first), arrives first for sure; without
        history it is hours earlier in the window, which a burst may deliver after the repeat."""
        cfg, rng = self.config, self.rng
        gap_ms = int(cfg.duplicate_window_s * 1000) + HOUR_MS  # past the 并单 window
        code = rng.choice([c for c in self.categories if c not in workorders.NOT_REPEATED])
        later = self._time()
        if cfg.history_days > 0:
            days = rng.randrange(1, min(cfg.history_days, 20) + 1)
            first = self._history_time(min(later - days * DAY_MS, self.start_ms - HOUR_MS))
        elif later - gap_ms > self.start_ms:
            first = rng.randrange(self.start_ms, later - gap_ms + 1)
        else:
            return  # a window too short for two reports of one person apart
        channel = rng.choice(CHANNELS)
        again = rng.choice([c for c in dict.fromkeys(CHANNELS) if c != channel])
        made = self._free_submit(first, code, channel)
        if made is None:  # pragma: no cover - 20 places in a row taken
            return
        event, village = made
        person = event["reporter"]
        self._emit_submit(event, first, village, code)
        if first >= self.start_ms and rng.random() < cfg.handled_fraction:
            self._steps(event, first, code)
        second = self._free_submit(later, code, again, village=village, like=event)
        if second is None:
            return
        repeat, _ = second
        repeat["reporter"] = dict(person)  # the same person id: the same salted hash
        self._emit_submit(repeat, later, village, code, repeat_of=event["report_id"])
        if rng.random() < cfg.handled_fraction:
            self._steps(repeat, later, code)

    def _history_time(self, at: int) -> int:
        """``at`` moved off the 24 h and 3-day marks before the window's end (± 30 min), so a
        history order's 督办 warnings (no response in 24 h, no progress in 3 days) are the
        same at the end of the window and minutes later, when the demo reconciles."""
        for mark in (DAY_MS, 3 * DAY_MS):
            if abs(self.end_ms - mark - at) < HOUR_MS // 2:
                at = self.end_ms - mark - HOUR_MS
        return at

    def _hotspot(self) -> None:
        """热点: :data:`HOTSPOT_BURST` grid-patrol reports of one grid and category in the last
        two days (the current week) and, with history, :data:`HOTSPOT_BASELINE` of them 9 to
        27 days before (the baseline weeks) — quiet before, many now. No two are 并单
        duplicates. Only the burst reports inside the window get handling steps."""
        cfg, rng = self.config, self.rng
        village = rng.choice(self.villages)
        code = rng.choice([c for c in self.categories if c not in workorders.NOT_REPEATED])
        grid = f"{village.code}-{rng.randrange(1, 9):02d}"
        times = [
            self._history_time(self.end_ms - rng.randrange(10 * 60_000, 2 * DAY_MS))
            for _ in range(HOTSPOT_BURST)
        ]
        if cfg.history_days >= 9:
            last = min(cfg.history_days, 27)
            times += [
                self._history_time(self.end_ms - rng.randrange(9 * DAY_MS, last * DAY_MS + 1))
                for _ in range(HOTSPOT_BASELINE)
            ]
        for at in sorted(times):
            if at < self.start_ms and cfg.history_days <= 0:
                continue  # no history: only the reports inside the window
            made = self._free_submit(at, code, "grid_patrol", village=village)
            if made is None:
                continue
            event, _ = made
            event["grid_id"] = grid
            self._emit_submit(event, at, village, code, hotspot=grid)
            if at >= self.start_ms and rng.random() < cfg.handled_fraction:
                self._steps(event, at, code)

    def _bad(self, occurred: int) -> None:
        rng = self.rng
        kind = rng.choice(sorted(BAD_KINDS))
        village = rng.choice(self.villages)
        code = rng.choice(self.categories)
        event = self._submit(occurred, village, code)
        reason = BAD_KINDS[kind]
        meta = {"kind": "bad", "bad": kind}
        sim = SimEvent(
            "report", event["report_id"], occurred, value=event, expected=reason, meta=meta
        )
        if kind == "unknown_region":
            while True:
                fake = village.code[:9] + f"{rng.randrange(600, 1000):03d}"
                if not divisions.is_known(fake):
                    break
            event["region_code"] = fake
        elif kind == "empty_description":
            event["description"] = rng.choice(("", " ", "\u3000"))
            event.pop("category_hint", None)
        elif kind == "bad_id_number":
            event["reporter"]["id_number"] = id_number(rng, village.code[:6], valid=False)
        elif kind == "future_timestamp":
            event["occurred_at"] = _iso(self.end_ms + rng.randrange(1, 72) * 3_600_000)
        elif kind == "not_avro":
            sim.raw = json.dumps(event, ensure_ascii=False).encode()
            sim.value = None
        elif kind == "unknown_schema_id":
            sim.raw = codec.frame(UNKNOWN_SCHEMA_ID + rng.randrange(1000), rng.randbytes(40))
            sim.value = None
        elif kind == "wrong_schema":  # a form submission sent to the report topic
            sim.frame_as = contracts.FORM_SUBMISSION
            sim.value = self._form_value(village, 1, occurred, abnormal=False)
        self.add(sim)

    # forms ---------------------------------------------------------------------------------

    def _resident(self, village: divisions.Division, number: int) -> dict[str, Any]:
        r = random.Random(f"{self.config.seed}:{village.code}:{number}")
        return {
            "id": f"res-{village.code}-{number:05d}",
            "name": _name(r),
            "phone": _phone(r),
            "id_number": id_number(r, village.code[:6]),
        }

    def _form_value(
        self, village: divisions.Division, number: int, at: int, abnormal: bool
    ) -> dict[str, Any]:
        rng = self.rng
        if abnormal:
            fever = rng.random() < 0.7
            temperature = (
                round(rng.uniform(37.3, 39.6), 1) if fever else round(rng.uniform(36.2, 37.2), 1)
            )
            symptoms = rng.sample(SYMPTOMS, rng.randrange(0 if fever else 1, 3))
        else:
            temperature, symptoms = round(rng.uniform(35.9, 37.2), 1), []
        answers: dict[str, Any] = {
            "temperature": temperature,
            "symptoms": symptoms,
            "travelled_14d": rng.random() < 0.05,
            "household_size": rng.randrange(1, 7),
        }
        if abnormal and rng.random() < 0.5:
            answers["remark"] = rng.choice(
                ("已在家自行隔离", "昨晚开始发烧", "嗓子疼", "已去卫生院看过")
            )
        return {
            "submission_id": _uuid(rng),
            "form_id": FORM_ID,
            "form_version": FORM_VERSION,
            "region_code": village.code,
            "respondent": self._resident(village, number),
            "answers": answers,
            "submitted_at": _iso(at),
            "channel": rng.choice(("app", "app", "group_message", "grid_patrol")),
        }

    def forms(self) -> None:
        cfg, rng = self.config, self.rng
        if cfg.n_forms == 0:
            return
        pool = [v for v in self.villages if 2000 <= v.population <= 3000] or self.villages
        # enough communities that at most about half of their residents answer
        wanted = max(cfg.communities, math.ceil(cfg.n_forms / 1000))
        communities = sorted(rng.sample(pool, min(wanted, len(pool))), key=lambda v: v.code)
        done: list[tuple[divisions.Division, int, int]] = []
        taken: set[tuple[str, int]] = set()
        answered: Counter[str] = Counter()
        for at in sorted(self._time() for _ in range(cfg.n_forms)):
            open_ = [v for v in communities if answered[v.code] < v.population]
            if done and (rng.random() < cfg.resubmit_fraction or not open_):
                village, number, first_at = rng.choice(done)
                at = max(at, first_at + 60_000)
                kind = "resubmit"
            else:
                village = rng.choice(open_ or communities)
                number = rng.randrange(1, max(1, village.population) + 1)
                while (village.code, number) in taken:
                    number = number % max(1, village.population) + 1
                taken.add((village.code, number))
                answered[village.code] += 1
                done.append((village, number, at))
                kind = "first"
            if at >= self.end_ms:
                continue
            value = self._form_value(
                village, number, at, abnormal=rng.random() < cfg.abnormal_fraction
            )
            meta = {
                "kind": kind,
                "community": village.code,
                "residents": village.population,
                "respondent": value["respondent"]["id"],
                "abnormal": is_abnormal(value["answers"]),
                "occurred_ms": at,
            }
            key = contracts.key_for(contracts.FORM_SUBMISSION, value)
            self.add(SimEvent(contracts.FORM_SUBMISSION, key, at, value=value, meta=meta))

    # alerts --------------------------------------------------------------------------------

    def alerts(self) -> None:
        cfg, rng = self.config, self.rng
        types = load_warning_types()
        cities = sorted({v.code[:4] for v in self.villages})
        for _ in range(cfg.n_warnings):
            city = divisions.get(rng.choice(cities))
            counties = [c for c in divisions.children(city.code)] or [city]
            areas = sorted(
                c.code[:6]
                for c in rng.sample(counties, rng.randrange(1, min(4, len(counties)) + 1))
            )
            hazard, hazard_cn, levels = rng.choice(types)
            level = rng.choice(levels)
            span = self.end_ms - self.start_ms
            at = self.start_ms + rng.randrange(0, max(1, span * 2 // 3))
            chain: list[str] = []
            sender = f"{city.name}气象台"
            for msg_type in ("Alert", "Update", "Cancel"):
                if msg_type == "Update":
                    others = [lv for lv in levels if lv != level]
                    if not others or rng.random() < 0.5:
                        continue
                    level = rng.choice(others)
                if msg_type == "Cancel" and rng.random() < 0.5:
                    break
                if msg_type != "Alert":
                    at += rng.randrange(max(1, span // 20), max(2, span // 4))
                if at >= self.end_ms:
                    break
                stamp = datetime.fromtimestamp(at / 1000, CST)
                alert_id = f"{city.code[:4]}00{rng.randrange(10**8):08d}_{stamp:%Y%m%d%H%M%S}"
                verb = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}[msg_type]
                headline = f"{sender}{verb}{hazard_cn}{LEVEL_CN[level]}预警信号"
                area_names = "、".join(divisions.get(a).name for a in areas)
                value: dict[str, Any] = {
                    "alert_id": alert_id,
                    "sender": sender,
                    "sent_at": _iso(at),
                    "msg_type": msg_type,
                    "references": list(chain),
                    "hazard": hazard,
                    "level": level,
                    "region_codes": areas,
                    "headline": headline,
                    "description": f"{headline}：请{area_names}注意防范。",
                    "instruction": ""
                    if msg_type == "Cancel"
                    else "政府及相关部门按照职责做好防御工作。",
                    "effective": _iso(at),
                }
                chain.append(alert_id)
                meta = {"kind": msg_type, "root": chain[0], "level": level, "occurred_ms": at}
                key = contracts.key_for(contracts.ALERT, value)
                self.add(SimEvent(contracts.ALERT, key, at, value=value, meta=meta))


def is_abnormal(answers: dict[str, Any]) -> bool:
    """Fever (≥ 37.3 °C) or any symptom: what the form statistics count as abnormal."""
    temperature = float(answers.get("temperature", 0) or 0)
    symptoms = answers.get("symptoms") or []
    if isinstance(symptoms, str):
        symptoms = json.loads(symptoms)
    return temperature >= FEVER_C or bool(symptoms)


def split_history(
    events: Sequence[SimEvent], config: SimConfig, *, now: datetime | None = None
) -> tuple[list[SimEvent], list[SimEvent]]:
    """(the events sent before the window starts: the history's SUBMITs, the rest), each in
    sending order. Send the history first and let the pipeline take it before the rest: a
    repeat is only found when its first report arrived first."""
    start_ms = _ms(config.window(now)[0])
    history = [e for e in events if e.emit_ms < start_ms]
    return history, [e for e in events if e.emit_ms >= start_ms]


def generate(config: SimConfig, *, now: datetime | None = None) -> list[SimEvent]:
    """The events of ``config`` in sending order (deterministic for a seed and a window)."""
    while True:
        sim = _Sim(config, now)
        sim.reports()
        sim.forms()
        sim.alerts()
        events = sorted(sim.events, key=lambda e: (e.emit_ms, e.meta["seq"]))
        if config.count is None:
            return events
        if len(events) >= config.count or not events:
            return events[: config.count]
        # too few (a short window cuts handling steps): scale up, still deterministic
        config = dataclasses.replace(
            config, reports=config.reports * 3 // 2 + 1, forms=config.n_forms * 3 // 2 + 1
        )


# --- the manifest ----------------------------------------------------------------------------


def duplicates_of(events: Sequence[SimEvent], config: SimConfig) -> dict[str, str]:
    """并单: report id → the first report it duplicates, replaying the pipeline's own rule
    (``reports.find_duplicate``) on the SUBMITs in sending order."""
    open_orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    duplicates: dict[str, str] = {}
    for e in events:
        if e.meta.get("kind") != "submit":
            continue
        assert e.value is not None
        order = {
            "report_id": e.key,
            "occurred_ms": e.meta["occurred_ms"],
            "lat": e.value.get("lat"),
            "lon": e.value.get("lon"),
            "address": e.value.get("address", ""),
        }
        key = e.meta["dedupe_key"]
        first = reports.find_duplicate(
            open_orders[key], order, config.duplicate_window_s, config.duplicate_distance_m
        )
        if first is not None:
            duplicates[e.key] = first
        else:
            open_orders[key] = reports.remember(open_orders[key], order, config.duplicate_window_s)
    return duplicates


def manifest(
    events: Sequence[SimEvent],
    config: SimConfig,
    *,
    now: datetime | None = None,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """What the pipeline should make of ``events``: counts per topic and per expected outcome,
    and the closed loop's figures at the window's end (``analysis``: the settings the views
    run with, default the defaults)."""
    start, end = config.window(now)
    per_topic = Counter(e.topic for e in events)
    dead: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        if e.expected != "ok":
            dead[e.topic][e.expected] += 1
    # reports: work orders, 并单 (replaying the pipeline's own rule in sending order)
    submits = [e for e in events if e.meta.get("kind") == "submit"]
    duplicates = duplicates_of(events, config)
    steps = [e for e in events if e.meta.get("kind") == "step"]
    forms = _form_stats(events)
    alerts = _alert_stats(events)
    return {
        "seed": config.seed,
        "config": config.as_dict(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "events": len(events),
        "topics": {t: per_topic.get(t, 0) for t in contracts.AVRO_TOPICS},
        "dead_letters": {t: dict(sorted(c.items())) for t, c in sorted(dead.items())},
        "dead_letters_total": sum(sum(c.values()) for c in dead.values()),
        "reports": {
            "submits": len(submits),
            "work_orders": len({e.key for e in submits}),
            "duplicates": len(duplicates),
            "duplicate_of": dict(sorted(duplicates.items())),
            "by_category": dict(sorted(Counter(e.meta["category"] for e in submits).items())),
            "by_department": dict(sorted(Counter(e.meta["department"] for e in submits).items())),
            "steps": {a: sum(1 for e in steps if e.meta["action"] == a) for a in STEP_ACTIONS},
            "late_steps": sum(1 for e in steps if e.meta["late"]),
            "bad": dict(sorted(Counter(e.meta["bad"] for e in events if "bad" in e.meta).items())),
        },
        "forms": forms,
        "alerts": alerts,
        "closed_loop": closed_loop(events, config, at=end, analysis=analysis),
    }


def closed_loop(
    events: Sequence[SimEvent],
    config: SimConfig,
    *,
    at: datetime,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The closed loop's figures at ``at`` (the manifest's ``closed_loop``): the 三率 per
    department, 督办 warnings, 问题工单, repeats and the hotspots of ``at``'s day."""
    settings = analysis or Analysis()
    at_ms = _ms(at)
    orders = order_outcomes(events)
    duplicates = duplicates_of(events, config)
    kpis = expected_kpis(orders, duplicates, at_ms, settings.rules)
    repeats = expected_repeats(events, settings.repeat_window_days)
    today = at.astimezone(CST).date()
    return {
        "at": at.isoformat(),
        "settings": asdict(settings),
        "kpi_by_department": kpis,
        "kpi_totals": _kpi_totals(kpis.values()),
        "supervision": expected_supervision(orders, at_ms, settings.rules),
        "problem_orders": sum(int(k["problem_orders"]) for k in kpis.values()),
        "transferred": sum(1 for o in orders.values() if o["transfers"]),
        "reopened": sum(1 for o in orders.values() if o["reopens"]),
        "repeats": len(repeats),
        "repeat_of": dict(sorted(repeats.items())),
        "hotspots": expected_hotspots(events, today, settings),
        # 热点预警: the worker's leader sends one alert per hotspot of the day
        "hotspot_alerts": expected_hotspot_alerts(events, today, settings),
        "seeded_hotspots": sorted(
            {(e.meta["hotspot"], e.meta["category"]) for e in events if e.meta.get("hotspot")}
        ),
        "today": today.isoformat(),
    }


def _form_stats(events: Iterable[SimEvent]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str], tuple[int, bool]] = {}
    for e in events:
        if e.topic != contracts.FORM_SUBMISSION or e.expected != "ok":
            continue
        assert e.value is not None
        code = e.meta["community"]
        row = per.setdefault(
            code,
            {
                "name": divisions.get(code).name,
                "residents": e.meta["residents"],
                "submissions": 0,
                "abnormal_submissions": 0,
            },
        )
        row["submissions"] += 1
        row["abnormal_submissions"] += int(e.meta["abnormal"])
        who = (code, e.meta["respondent"])
        previous = latest.get(who)
        if previous is None or previous[0] <= e.meta["occurred_ms"]:
            latest[who] = (e.meta["occurred_ms"], e.meta["abnormal"])
    for (code, _who), (_at, abnormal) in latest.items():
        row = per[code]
        row["respondents"] = row.get("respondents", 0) + 1
        row["abnormal_respondents"] = row.get("abnormal_respondents", 0) + int(abnormal)
    communities = {
        code: {"respondents": 0, "abnormal_respondents": 0, **row}
        for code, row in sorted(per.items())
    }
    return {
        FORM_ID: {
            "form_version": FORM_VERSION,
            "submissions": sum(r["submissions"] for r in communities.values()),
            "respondents": sum(r["respondents"] for r in communities.values()),
            "abnormal_respondents": sum(r["abnormal_respondents"] for r in communities.values()),
            "communities": communities,
        }
    }


def _alert_stats(events: Iterable[SimEvent]) -> dict[str, Any]:
    messages: Counter[str] = Counter()
    state: dict[str, tuple[str, bool]] = {}  # root → (level, cancelled)
    for e in events:
        if e.topic != contracts.ALERT:
            continue
        messages[e.meta["kind"]] += 1
        root = e.meta["root"]
        state[root] = (e.meta["level"], e.meta["kind"] == "Cancel")
    active = Counter(level for level, cancelled in state.values() if not cancelled)
    return {
        "messages": {k: messages.get(k, 0) for k in ("Alert", "Update", "Cancel")},
        "warnings": len(state),
        "cancelled": sum(1 for _level, cancelled in state.values() if cancelled),
        "active_by_level": {lv: active.get(lv, 0) for lv in LEVEL_CN},
    }


# --- output ------------------------------------------------------------------------------------


def write_jsonl(events: Sequence[SimEvent], out_dir: Path) -> dict[str, Path]:
    """Dry run: one JSONL file per topic (from_json input) and raw.jsonl for the bad bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    handles: dict[str, Any] = {}
    try:
        for e in events:
            name = "raw" if (e.raw is not None or e.frame_as) else e.topic
            if name not in handles:
                paths[name] = out_dir / f"{name}.jsonl"
                handles[name] = paths[name].open("w", encoding="utf-8")
            handles[name].write(e.json_line() + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    return paths


def send(
    events: Sequence[SimEvent],
    producer: Any,
    *,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send ``events`` with an :class:`~pipelines.producer.EventProducer` (``rate``: events/s)."""
    import time

    started = time.monotonic()
    for i, e in enumerate(events, start=1):
        if e.raw is not None:
            producer.produce_raw(e.topic, e.raw, key=e.key)
        elif e.frame_as is not None:
            assert e.value is not None
            record = contracts.from_json(e.frame_as, e.value)
            producer.produce_raw(e.topic, producer.serialize(e.frame_as, record), key=e.key)
        else:
            producer.send(e.topic, e.value)
        if rate:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if progress is not None and (i % 500 == 0 or i == len(events)):
            progress(i)
    return len(events)


# --- work-order supervision: expected on-time rates (issue 6) --------------------------------


def expected_on_time(events: Iterable[SimEvent]) -> dict[str, dict[str, Any]]:
    """Per routed department: work orders resolved (a RESOLVE not undone by a later reopen),
    those resolved by their SLA deadline (occurred_at + the category's SLA hours), and the
    on-time rate — computed from the simulator's own timestamps (:func:`order_outcomes`),
    independently of the pipeline's state machine."""
    out: dict[str, dict[str, Any]] = {}
    for o in order_outcomes(events).values():
        if o["resolved_ms"] is None:
            continue
        stats = out.setdefault(o["routed_department"], {"resolved": 0, "on_time": 0})
        stats["resolved"] += 1
        stats["on_time"] += int(bool(o["on_time"]))
    for stats in out.values():
        stats["rate"] = stats["on_time"] / stats["resolved"]
    return dict(sorted(out.items()))


# --- the closed loop: expected figures (issue 19) --------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """The settings the repeat and hotspot views and the 督办 rules run with (defaults:
    pipelines/settings.py)."""

    repeat_window_days: float = 30
    hotspot_window_days: int = 7
    hotspot_baseline_windows: int = 4
    hotspot_min_reports: int = 5
    hotspot_min_ratio: float = 2.0
    # the 督办 thresholds (workorders.SupervisionRules; settings supervision_*)
    supervision_no_response_hours: float = 24.0
    supervision_no_progress_days: float = 3.0
    supervision_dissatisfied_in_a_row: int = 2
    supervision_problem_after: int = 3

    @property
    def rules(self) -> workorders.SupervisionRules:
        """The 督办 thresholds as the worker's pure functions take them."""
        return workorders.SupervisionRules.of(self)

    @classmethod
    def of(cls, settings: Any) -> Analysis:
        """The values of a :class:`~pipelines.settings.Settings` (what the worker publishes
        to gov.analysis_settings)."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def order_outcomes(events: Iterable[SimEvent]) -> dict[str, dict[str, Any]]:
    """Per work order (every valid SUBMIT, 并单 duplicates too): what its handling steps make
    of it, replayed in time order by the rules of pipelines/workorders.py written out here —
    state, current department (DISPATCH and TRANSFER name it), first response, resolution and
    on-time flag (a reopen clears them), reopens, transfers, the latest 回访 rating and
    solved answer, the longest run of dissatisfied ratings (unreachable neither counts nor
    breaks it) and the last step's time."""
    out: dict[str, dict[str, Any]] = {}
    steps: dict[str, list[SimEvent]] = defaultdict(list)
    for e in events:
        kind = e.meta.get("kind")
        if kind == "submit" and e.expected == "ok":
            submitted = int(e.meta["occurred_ms"])
            sla = taxonomy.get(e.meta["category"]).sla_hours
            out[e.key] = {
                "routed_department": e.meta["department"],
                "department": e.meta["department"],
                "submitted_ms": submitted,
                "first_deadline_ms": submitted + int(sla * HOUR_MS),
                "state": "submitted",
                "responded_ms": None,
                "resolved_ms": None,
                "on_time": None,
                "reopens": 0,
                "transfers": 0,
                "satisfaction": "",
                "resident_solved": None,
                "streak": 0,
                "max_streak": 0,
                "last_ms": submitted,
            }
        elif kind == "step":
            steps[e.key].append(e)
    for report_id, order in out.items():
        for e in sorted(steps[report_id], key=lambda e: (e.meta["occurred_ms"], e.meta["seq"])):
            _outcome_step(order, e.meta["action"], int(e.meta["occurred_ms"]), e.value or {})
    return out


def _outcome_step(order: dict[str, Any], action: str, at: int, value: dict[str, Any]) -> None:
    if order["responded_ms"] is None:
        order["responded_ms"] = at
    order["last_ms"] = at
    order["state"] = {
        "ACCEPT": "accepted",
        "DISPATCH": "dispatched",
        "TRANSFER": "dispatched",
        "RESOLVE": "resolved",
        "VERIFY": "verified",
        "CLOSE": "closed",
        "REVISIT": "closed",
    }[action]
    if action in ("DISPATCH", "TRANSFER"):
        order["department"] = value.get("assigned_department") or order["department"]
        order["transfers"] += int(action == "TRANSFER")
    elif action == "RESOLVE":
        order["resolved_ms"] = at
        order["on_time"] = at <= order["first_deadline_ms"]
    elif action == "REVISIT":
        rating, solved = str(value["satisfaction"]), value.get("resident_solved")
        order["satisfaction"], order["resident_solved"] = rating, solved
        if rating == "dissatisfied":
            order["streak"] += 1
        elif rating in ("satisfied", "basically_satisfied"):
            order["streak"] = 0
        order["max_streak"] = max(order["max_streak"], order["streak"])
        if rating == "dissatisfied" and solved is False:  # 发回重办
            order["state"] = "reopened"
            order["reopens"] += 1
            order["resolved_ms"] = order["on_time"] = None


def expected_kpis(
    orders: dict[str, dict[str, Any]],
    duplicates: dict[str, str],
    at_ms: int,
    rules: workorders.SupervisionRules = workorders.DEFAULT_RULES,
) -> dict[str, dict[str, Any]]:
    """Per current department, the counts and 三率 of gov.kpi_by_department summed over every
    day (README, the closed loop): orders received (并单 duplicates left out); response judged
    (answered, or 24 h passed by ``at_ms``) and responded within 24 h; rated (a latest rating
    other than unreachable), of which the resident said solved, of which satisfied or basically
    satisfied; 问题工单 (reworked or transferred ``rules.problem_after`` times, default 3; the
    24 h of the response rate is the KPI's own definition, not a setting). response_rate =
    responded / judged, resolution_rate = solved / rated, satisfaction_rate = satisfied / rated
    (None when nothing is judged)."""
    out: dict[str, dict[str, Any]] = {}
    for report_id, o in orders.items():
        if report_id in duplicates:
            continue
        k = out.setdefault(o["department"], dict.fromkeys(closedloop.KPI_COUNTS, 0))
        submitted, responded = o["submitted_ms"], o["responded_ms"]
        rated = o["satisfaction"] in workorders.RATED
        k["received"] += 1
        k["response_judged"] += int(responded is not None or submitted + DAY_MS < at_ms)
        k["responded"] += int(responded is not None and responded <= submitted + DAY_MS)
        k["rated_orders"] += int(rated)
        k["solved"] += int(rated and o["resident_solved"] is True)
        k["satisfied"] += int(o["satisfaction"] in ("satisfied", "basically_satisfied"))
        k["problem_orders"] += int(max(o["reopens"], o["transfers"]) >= rules.problem_after)
    return {d: {**k, **closedloop.rates(k)} for d, k in sorted(out.items())}


def _kpi_totals(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total = dict.fromkeys(closedloop.KPI_COUNTS, 0)
    for row in rows:
        for name in closedloop.KPI_COUNTS:
            total[name] += int(row[name])
    return {**total, **closedloop.rates(total)}


def expected_supervision(
    orders: dict[str, dict[str, Any]],
    at_ms: int,
    rules: workorders.SupervisionRules = workorders.DEFAULT_RULES,
) -> dict[str, int]:
    """督办 warnings raised by ``at_ms`` per condition (workorders.supervise under ``rules``),
    every order: no_response (no handling step and 24 h passed), no_progress (not closed and 3
    days since its last step), dissatisfied_twice (two dissatisfied ratings in a row),
    problem_order (reworked or transferred 3 times); the numbers are the default rules'.
    Exact for the simulator's events, whose orders with steps are younger than 24 h (a step
    taken days ago, processed now, would raise no_progress on the way)."""
    counts = dict.fromkeys(workorders.SUPERVISION, 0)
    for o in orders.values():
        if o["responded_ms"] is None and o["submitted_ms"] + rules.no_response_ms < at_ms:
            counts["no_response"] += 1
        if o["state"] != "closed" and o["last_ms"] + rules.no_progress_ms < at_ms:
            counts["no_progress"] += 1
        if o["max_streak"] >= rules.dissatisfied_in_a_row:
            counts["dissatisfied_twice"] += 1
        if max(o["reopens"], o["transfers"]) >= rules.problem_after:
            counts["problem_order"] += 1
    return counts


def expected_repeats(events: Iterable[SimEvent], window_days: float) -> dict[str, str]:
    """重复诉求: report id → the report it repeats, replaying workorders.find_repeat on every
    valid SUBMIT in sending order (the reporter id stands for its salted hash)."""
    earlier: dict[str, list[dict[str, Any]]] = defaultdict(list)
    found: dict[str, str] = {}
    for e in events:
        if e.meta.get("kind") != "submit" or e.expected != "ok" or e.value is None:
            continue
        complaint = {
            "report_id": e.key,
            "person": str((e.value.get("reporter") or {}).get("id") or ""),
            "category": e.meta["category"],
            "occurred_ms": int(e.meta["occurred_ms"]),
        }
        if not workorders.may_repeat(complaint):
            continue
        person = complaint["person"]
        first = workorders.find_repeat(earlier[person], complaint, window_days)
        if first is not None:
            found[e.key] = first
        earlier[person] = workorders.remember_complaint(earlier[person], complaint, window_days)
    return found


def expected_hotspot_alerts(
    events: Iterable[SimEvent], today: date, settings: Analysis | None = None
) -> list[str]:
    """热点预警: the ids of the alerts the worker's hotspot check sends for the hotspots of the
    window ending ``today`` (pipelines/hotspots.py: one per grid, category and episode; the day
    has no alert sent before it), sorted.
    Every simulated grid lies in a known township, so none is left without an area."""
    return sorted(
        hotspots.hotspot_root(h["grid_id"], h["category_code"], today)
        for h in expected_hotspots(events, today, settings)
    )


def expected_hotspots(
    events: Iterable[SimEvent], today: date, settings: Analysis | None = None
) -> list[dict[str, Any]]:
    """热点 of the window ending ``today`` (gov.hotspots where window_end = today): per grid and
    category (reports naming a grid, X9999 left out, 并单 duplicates counted), the reports of
    the ``hotspot_window_days`` days ending today (Asia/Shanghai dates) against the mean of the
    ``hotspot_baseline_windows`` windows before; hot at ``hotspot_min_reports`` and
    ``hotspot_min_ratio`` × that mean. Sorted by grid and category."""
    s = settings or Analysis()
    days: Counter[tuple[str, str, date]] = Counter()
    for e in events:
        if e.meta.get("kind") != "submit" or e.expected != "ok" or e.value is None:
            continue
        grid = str(e.value.get("grid_id") or "")
        if grid and e.meta["category"] not in workorders.NOT_REPEATED:
            day = datetime.fromtimestamp(e.meta["occurred_ms"] / 1000, CST).date()
            days[(grid, e.meta["category"], day)] += 1
    window: Counter[tuple[str, str]] = Counter()
    baseline: Counter[tuple[str, str]] = Counter()
    span = s.hotspot_window_days * (s.hotspot_baseline_windows + 1)
    for (grid, code, day), n in days.items():
        back = (today - day).days
        if 0 <= back < s.hotspot_window_days:
            window[(grid, code)] += n
        elif s.hotspot_window_days <= back < span:
            baseline[(grid, code)] += n
    hot = []
    for (grid, code), n in sorted(window.items()):
        mean = baseline[(grid, code)] / s.hotspot_baseline_windows
        if n >= s.hotspot_min_reports and n >= s.hotspot_min_ratio * mean:
            hot.append(
                {
                    "grid_id": grid,
                    "category_code": code,
                    "reports": n,
                    "baseline_reports": baseline[(grid, code)],
                }
            )
    return hot
