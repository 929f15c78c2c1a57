//! Deterministic synthetic knowledge base and user queries for kefu's speed benchmarks.
//!
//! Speed depends on term statistics (posting-list lengths, question lengths, how many
//! questions each article has), so the text is composed from hand-written Chinese
//! customer-service vocabulary and sentence templates rather than random characters: slot
//! values are drawn with a Zipf-like law, titles and paraphrases of one article share their
//! slot values, and queries are colloquial rewrites of real questions plus ~20 % off-topic
//! chatter. Everything comes from a self-written splitmix64 generator, so one seed always
//! gives the same bytes. No text here comes from the held-out benchmark.
//!
//! Included with `#[path]` by the benches and by `examples/synth_kb.rs`; not every user
//! calls every function.
#![allow(dead_code)]

use std::collections::HashSet;

use kefu::knowledge::Article;

// ------------------------------------------------------------------------------------ PRNG

/// splitmix64: tiny, fast, and good enough for test data; no `rand` dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// Index in `0..n` with P(k) ≈ ln((k+2)/(k+1)) / ln(n+1): the continuous form of a Zipf
    /// law with exponent 1, so the head of every word list dominates as in real text.
    pub fn zipf_index(&mut self, n: usize) -> usize {
        let k = ((n as f64 + 1.0).powf(self.unit()) - 1.0) as usize;
        k.min(n - 1)
    }

    pub fn zipf<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.zipf_index(xs.len())]
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }
}

// ------------------------------------------------------------------------------ vocabulary

/// A product line: its products, the brands that make them, what customers ask about them
/// and what goes wrong with them. Keeping these together avoids "小米羽绒服掉色" nonsense.
struct Group {
    name: &'static str,
    products: &'static [&'static str],
    brands: &'static [&'static str],
    attrs: &'static [&'static str],
    problems: &'static [&'static str],
}

const ELECTRONICS: usize = 0;
const APPLIANCES: usize = 1;
const CLOTHING: usize = 2;
const BEAUTY: usize = 3;
const FOOD: usize = 4;
const BABY: usize = 5;
const HOME: usize = 6;
const SPORTS: usize = 7;

/// Ordered roughly by how often each line shows up in a store's tickets.
const GROUPS: &[Group] = &[
    Group {
        name: "数码",
        products: &[
            "手机", "蓝牙耳机", "笔记本电脑", "平板电脑", "充电宝", "智能手表", "充电器", "数据线", "路由器",
            "耳机", "显示器", "键盘", "鼠标", "音箱", "移动硬盘", "U盘", "内存卡", "打印机", "相机", "游戏机",
            "游戏手柄", "投影仪", "手环", "平板", "电脑", "无线耳机", "手机壳", "钢化膜", "摄像头", "学习机",
        ],
        brands: &["华为", "小米", "苹果", "荣耀", "OPPO", "vivo", "联想", "三星", "一加", "华硕", "戴尔", "索尼", "倍思", "绿联"],
        attrs: &[
            "内存", "颜色", "版本", "电池容量", "续航", "屏幕尺寸", "存储空间", "处理器", "像素", "充电功率", "重量",
            "网络制式", "分辨率", "接口", "保修期", "蓝牙版本", "防水等级", "刷新率",
        ],
        problems: &[
            "无法开机", "充不进电", "屏幕碎了", "发烫", "自动关机", "很卡", "连不上wifi", "蓝牙连不上", "没有声音",
            "电池鼓包", "闪屏", "死机", "触屏失灵", "摄像头模糊", "耗电快", "信号差", "一直重启", "按键失灵",
            "有杂音", "充电很慢",
        ],
    },
    Group {
        name: "家电",
        products: &[
            "空调", "冰箱", "洗衣机", "热水器", "电视", "扫地机器人", "空气炸锅", "电饭煲", "微波炉", "吸尘器",
            "净水器", "油烟机", "燃气灶", "洗碗机", "电风扇", "加湿器", "空气净化器", "烤箱", "豆浆机", "电热水壶",
            "吹风机", "电动牙刷", "剃须刀", "取暖器", "破壁机", "烘干机", "洗地机", "电磁炉",
        ],
        brands: &["美的", "海尔", "格力", "小米", "西门子", "松下", "九阳", "苏泊尔", "戴森", "TCL", "海信", "奥克斯", "方太", "老板"],
        attrs: &[
            "功率", "容量", "能效等级", "噪音", "尺寸", "耗电量", "制冷量", "颜色", "安装尺寸", "档位", "电压",
            "滤芯", "匹数", "适用面积", "保修期", "型号",
        ],
        problems: &[
            "不制冷", "漏水", "噪音很大", "不加热", "跳闸", "显示故障代码", "不出水", "遥控器失灵", "有异味",
            "不转了", "漏电", "启动不了", "结冰", "不排水", "显示E1", "指示灯一直闪", "吸力变小", "温度不准",
        ],
    },
    Group {
        name: "服饰",
        products: &[
            "羽绒服", "连衣裙", "运动鞋", "牛仔裤", "T恤", "卫衣", "衬衫", "外套", "毛衣", "裤子", "内衣", "袜子",
            "帽子", "围巾", "皮鞋", "凉鞋", "风衣", "西装", "短裤", "睡衣", "羊绒衫", "冲锋衣", "半身裙", "打底衫",
            "背包", "双肩包", "手提包", "钱包", "腰带",
        ],
        brands: &["优衣库", "李宁", "安踏", "耐克", "阿迪达斯", "波司登", "太平鸟", "森马", "特步", "海澜之家", "ZARA", "鸿星尔克"],
        attrs: &["尺码", "颜色", "面料", "材质", "厚度", "版型", "袖长", "洗涤方式", "鞋码", "含绒量", "衣长", "弹力", "款式"],
        problems: &[
            "起球", "掉色", "开线", "尺码偏小", "尺码偏大", "有色差", "有线头", "拉链坏了", "缩水", "有污渍",
            "掉毛", "有异味", "鞋底开胶", "磨脚", "钻绒", "扣子掉了", "褪色",
        ],
    },
    Group {
        name: "美妆",
        products: &[
            "面膜", "口红", "洗面奶", "防晒霜", "粉底液", "精华液", "面霜", "爽肤水", "香水", "眼霜", "卸妆水",
            "洗发水", "沐浴露", "身体乳", "护手霜", "眼影", "睫毛膏", "气垫", "乳液", "牙膏",
        ],
        brands: &["兰蔻", "雅诗兰黛", "欧莱雅", "百雀羚", "完美日记", "自然堂", "珀莱雅", "薇诺娜", "资生堂", "花西子", "玉兰油", "海飞丝"],
        attrs: &["色号", "容量", "成分", "保质期", "适合肤质", "香味", "生产日期", "使用顺序", "规格", "产地", "防晒指数"],
        problems: &[
            "过敏", "漏液", "颜色不对", "有异味", "泵头坏了", "质地变了", "用了长痘", "瓶子破了", "假货", "没有塑封",
            "搓泥", "脸发红",
        ],
    },
    Group {
        name: "食品",
        products: &[
            "牛奶", "坚果", "零食", "大米", "食用油", "茶叶", "咖啡", "水果", "月饼", "粽子", "巧克力", "饼干",
            "奶粉", "酸奶", "牛肉", "海鲜", "蜂蜜", "方便面", "矿泉水", "白酒", "红酒", "螺蛳粉", "挂面", "鸡蛋",
        ],
        brands: &["伊利", "蒙牛", "三只松鼠", "良品铺子", "金龙鱼", "农夫山泉", "百草味", "雀巢", "五粮液", "茅台", "旺旺", "康师傅"],
        attrs: &["保质期", "配料", "产地", "净含量", "口味", "储存方式", "热量", "生产日期", "包装", "规格", "糖分"],
        problems: &[
            "过期了", "有异物", "包装漏气", "发霉", "味道不对", "压碎了", "变质了", "胀袋", "少了几个", "坏果",
            "化了", "日期不新鲜",
        ],
    },
    Group {
        name: "母婴",
        products: &[
            "纸尿裤", "婴儿奶粉", "婴儿车", "儿童座椅", "奶瓶", "玩具", "积木", "湿巾", "儿童书包", "童装",
            "婴儿床", "辅食", "吸奶器", "安抚奶嘴", "儿童自行车", "绘本",
        ],
        brands: &["飞鹤", "帮宝适", "好孩子", "花王", "贝亲", "乐高", "美赞臣", "惠氏", "爱他美", "babycare"],
        attrs: &["段数", "月龄", "尺码", "成分", "材质", "适用年龄", "规格", "重量", "承重", "保质期"],
        problems: &["漏尿", "起红疹", "结块", "轮子坏了", "有异味", "零件缺失", "刹车失灵", "掉漆", "孩子喝了拉肚子", "安全带卡住"],
    },
    Group {
        name: "家居",
        products: &[
            "床垫", "枕头", "四件套", "沙发", "书桌", "椅子", "台灯", "窗帘", "衣柜", "餐桌", "保温杯", "炒锅",
            "刀具", "餐具", "收纳箱", "被子", "地毯", "晾衣架", "马桶", "花洒", "门锁", "猫粮", "狗粮", "猫砂",
        ],
        brands: &["宜家", "全友", "林氏木业", "水星家纺", "罗莱", "富安娜", "膳魔师", "双立人", "九牧", "箭牌", "顾家"],
        attrs: &["尺寸", "材质", "颜色", "承重", "填充物", "厚度", "安装方式", "硬度", "规格", "款式"],
        problems: &[
            "有异味", "开裂", "掉漆", "晃动", "缺少螺丝", "塌陷", "漏水", "生锈", "起毛", "锁打不开", "尺寸不对",
            "安装不上", "有甲醛味",
        ],
    },
    Group {
        name: "运动户外",
        products: &[
            "自行车", "电动车", "头盔", "跑步机", "瑜伽垫", "哑铃", "帐篷", "钓鱼竿", "篮球", "羽毛球拍", "泳衣",
            "滑板", "登山鞋", "睡袋", "健身环", "动感单车",
        ],
        brands: &["迪卡侬", "牧高笛", "捷安特", "雅迪", "爱玛", "九号", "舒华", "尤尼克斯", "斯伯丁", "凯乐石"],
        attrs: &["尺寸", "重量", "材质", "颜色", "承重", "续航", "速度", "适用身高", "电池", "型号"],
        problems: &["漏气", "断了", "生锈", "刹车失灵", "充不上电", "异响", "链条掉了", "跑带打滑", "显示屏不亮", "胎破了"],
    },
];

const PLACES: &[&str] = &[
    "北京", "上海", "广州", "深圳", "杭州", "成都", "重庆", "武汉", "西安", "南京", "天津", "苏州", "长沙", "郑州",
    "青岛", "沈阳", "哈尔滨", "昆明", "大连", "厦门", "福州", "合肥", "济南", "南宁", "贵阳", "兰州", "乌鲁木齐",
    "拉萨", "呼和浩特", "海口", "三亚", "新疆", "西藏", "内蒙古", "青海", "宁夏", "香港", "澳门", "台湾", "海外",
    "偏远地区", "农村", "乡镇", "学校", "部队", "东北", "山区", "海南",
];

/// Points in time: "{T}有客服吗".
const WHEN: &[&str] = &[
    "今天", "明天", "周末", "晚上", "节假日", "春节期间", "双十一", "618", "国庆", "过年", "半夜", "后天",
    "元旦", "中秋", "工作日", "下午", "上午", "月底", "大促期间", "凌晨",
];

/// Durations: "物流{U}没更新".
const SPANS: &[&str] = &[
    "三天", "两天", "一周", "五天", "好几天", "十天", "半个月", "一个月", "24小时", "48小时", "一个星期", "四天", "七天",
];

const COURIERS: &[&str] = &[
    "顺丰", "京东物流", "中通", "圆通", "韵达", "申通", "邮政", "EMS", "极兔", "德邦", "菜鸟", "百世",
];

const PAYMENTS: &[&str] = &[
    "微信", "支付宝", "银行卡", "信用卡", "花呗", "白条", "云闪付", "余额", "礼品卡", "储蓄卡", "数字人民币",
    "Apple Pay", "对公转账", "微信支付",
];

const COUPONS: &[&str] = &[
    "优惠券", "满减券", "无门槛券", "店铺券", "红包", "新人券", "运费券", "品类券", "折扣券", "津贴", "会员券",
    "免单券", "购物金", "抵用券",
];

const MEMBERSHIPS: &[&str] = &["会员", "超级会员", "年卡会员", "月卡", "PLUS会员", "黑卡", "VIP", "家庭会员", "学生会员"];

const DOCUMENTS: &[&str] = &[
    "身份证", "护照", "驾驶证", "社保卡", "居住证", "户口本", "医保卡", "营业执照", "港澳通行证", "行驶证",
    "结婚证", "出生证明", "学生证", "老年卡", "不动产证", "台湾通行证",
];

const TELECOM: &[&str] = &[
    "流量包", "话费套餐", "宽带", "5G套餐", "亲情号", "来电显示", "彩铃", "国际漫游", "副卡", "携号转网",
    "停机保号", "视频会员", "语音包", "定向流量", "家庭套餐", "固话", "靓号", "物联网卡",
];

const APP_ERRORS: &[&str] = &["闪退", "打不开", "一直转圈", "白屏", "加载很慢", "无法更新", "登录不了", "黑屏", "提示网络错误", "卡住不动"];

const CARD_ISSUES: &[&str] = &["被冻结了", "丢了", "消磁了", "密码忘了", "过期了", "被吞了", "交易受限", "被盗刷了", "不能转账", "额度不够"];

const BILLS: &[&str] = &["电费", "水费", "燃气费", "物业费", "话费", "暖气费", "网费", "停车费"];

const HEIGHTS: &[&str] = &["150", "155", "158", "160", "162", "165", "168", "170", "172", "175", "178", "180", "183", "185"];
const WEIGHTS: &[&str] = &["90", "95", "100", "105", "110", "115", "120", "125", "130", "140", "150", "160", "180"];
const INSTALMENTS: &[&str] = &["3", "6", "12", "24", "三", "六", "十二"];

/// Product lines whose customers name a model ("Mate60手机", "KFR35空调").
const MODEL_GROUPS: &[usize] = &[ELECTRONICS, APPLIANCES, SPORTS, BABY];
const MODEL_SERIES: &[&str] = &[
    "Mate", "P", "Nova", "K", "X", "Y", "S", "Note", "Z", "A", "T", "V", "GT", "Air", "Reno", "Find", "iQOO", "Redmi",
    "KFR", "BCD", "EG", "JSQ", "Q", "M", "C", "F", "G", "H", "R", "W",
];
const MODEL_SUFFIXES: &[&str] = &["", "", "", "Pro", "Plus", "Max", "Ultra", "SE", "mini", "Lite", "E", "i"];

/// A model code such as "Mate60Pro": series, number and an optional suffix; thousands of
/// combinations, most of them rare.
fn model_code(rng: &mut Rng) -> String {
    let series = rng.zipf(MODEL_SERIES);
    let number = 10 + rng.zipf_index(90);
    format!("{series}{number}{}", rng.zipf(MODEL_SUFFIXES))
}

// ------------------------------------------------------------------------------- templates

/// One intent: the ways people ask it and the sentences its answers are made of.
/// Placeholders: {P} product, {B} brand, {A} attribute, {R} problem, {L} place, {T} point in
/// time, {U} duration, {C} courier, {Y} payment, {M} coupon, {V} membership, {D} document,
/// {S} telecom service, {E} app error, {K} bank-card issue, {X} bill, {H} height, {W} weight,
/// {I} instalments.
struct Family {
    category: &'static str,
    /// Product lines this intent makes sense for; empty: any.
    groups: &'static [usize],
    questions: &'static [&'static str],
    answers: &'static [&'static str],
}

const ANY: &[usize] = &[];
const GOODS_WITH_FAULTS: &[usize] = &[ELECTRONICS, APPLIANCES, SPORTS, BABY, HOME];
const INSTALLED: &[usize] = &[APPLIANCES, HOME, SPORTS];
const WEARABLE: &[usize] = &[CLOTHING, BABY];
const CONSUMABLE: &[usize] = &[FOOD, BEAUTY, BABY];

const FAMILIES: &[Family] = &[
    Family {
        category: "物流/发货",
        groups: ANY,
        questions: &[
            "{P}下单后多久发货", "{B}{P}什么时候能发货", "我买的{P}怎么还没发货", "{P}几天能发出", "拍了{P}多久发货",
            "{T}下单的{P}什么时候发", "{B}的{P}现在下单几天发货", "付款{U}了{P}还没发货",
        ],
        answers: &[
            "{P}现货订单一般在付款后48小时内发货，{T}订单量大时可能顺延1至2天。",
            "您可以在订单详情页查看预计发货时间，超时未发货可申请补偿。",
            "{B}官方仓库按付款顺序发货，请耐心等待物流信息更新。",
            "如超过承诺时间仍未发货，可联系在线客服为您催促仓库。",
        ],
    },
    Family {
        category: "物流/配送范围",
        groups: ANY,
        questions: &[
            "{P}能发{L}吗", "{L}可以配送{P}吗", "{L}包邮吗", "寄到{L}要几天", "{L}能送货上门吗", "{P}发{L}运费多少",
            "你们家{P}能寄到{L}吗", "{L}地区发什么快递",
        ],
        answers: &[
            "{L}在配送范围内，一般{U}左右可以送达，具体以物流信息为准。",
            "偏远地区需要额外收取运费，下单时页面会显示实际运费。",
            "部分大件商品{L}暂不支持送货上门，需要到附近网点自提。",
            "{C}在{L}覆盖较全，如地址无法配送，下单时会有提示。",
        ],
    },
    Family {
        category: "物流/快递公司",
        groups: ANY,
        questions: &[
            "{P}默认发什么快递", "可以指定发{C}吗", "能不能发{C}", "{C}送不到我这怎么办", "不要发{C}可以吗",
            "{B}{P}是用{C}发货吗", "换成{C}要加钱吗",
        ],
        answers: &[
            "仓库默认按收货地址自动匹配快递，{C}需要补差价才能指定。",
            "如需指定快递，请在下单时备注，仓库会尽量安排。",
            "{C}无法派送的地区，系统会自动改为邮政发货。",
            "已经发出的包裹无法更换快递公司，敬请谅解。",
        ],
    },
    Family {
        category: "物流/物流异常",
        groups: ANY,
        questions: &[
            "物流信息{U}没更新了", "快递一直不动怎么回事", "{C}物流停了{U}", "我的包裹卡在{L}了", "{P}物流显示异常怎么办",
            "{C}快递{U}都没动", "物流一直显示运输中", "包裹到{L}就不动了",
        ],
        answers: &[
            "物流信息更新可能有延迟，{T}件量大时中转会慢一些。",
            "如超过{U}未更新，我们会联系{C}核实包裹位置。",
            "确认丢件后将为您补发或全额退款，请放心。",
            "您也可以拨打{C}客服电话查询最新派送进度。",
        ],
    },
    Family {
        category: "物流/签收",
        groups: ANY,
        questions: &[
            "显示已签收但我没收到{P}", "快递被别人签收了怎么办", "{C}显示签收了东西没拿到", "包裹放{L}了没通知我",
            "没收到货却显示签收", "{P}签收了但不在家", "快递员没打电话就签收了",
        ],
        answers: &[
            "请先确认是否由家人、门卫或快递柜代收，并查看取件短信。",
            "如确实未收到，请在签收后48小时内联系客服，我们会向{C}发起核查。",
            "核查期间请保留沟通记录，确认丢失后将补发{P}或退款。",
        ],
    },
    Family {
        category: "订单/修改地址",
        groups: ANY,
        questions: &[
            "下单后能改地址吗", "{P}的收货地址填错了怎么改", "发货了还能修改收货地址吗", "想把地址改成{L}",
            "怎么修改订单的收货人电话", "{B}{P}订单地址能改吗", "地址写错了{P}已经发出了",
        ],
        answers: &[
            "未发货的订单可在订单详情页点击修改地址，每笔订单可修改一次。",
            "已发货的订单需要联系{C}申请改派，可能产生额外费用。",
            "跨城市修改地址可能影响时效，改到{L}预计多{U}到达。",
        ],
    },
    Family {
        category: "订单/取消订单",
        groups: ANY,
        questions: &[
            "{P}订单怎么取消", "付款后能取消订单吗", "不想要{P}了怎么取消", "取消订单后钱多久退回", "已发货的订单可以取消吗",
            "{B}{P}拍错了能取消吗", "取消订单有影响吗", "怎么取消{T}拍的订单",
        ],
        answers: &[
            "未发货的订单可以在订单详情页直接取消，款项原路退回。",
            "已发货的订单无法取消，可在收到{P}后申请退货。",
            "{Y}支付的订单取消后一般1至3个工作日到账。",
            "频繁取消订单不会影响账号，但可能无法享受部分优惠。",
        ],
    },
    Family {
        category: "订单/催发货",
        groups: ANY,
        questions: &[
            "能加急发货吗", "{T}之前能到吗", "{P}急用能不能快点发", "可以催一下发货吗", "{B}{P}能加急吗",
            "我{T}就要用{P}来得及吗", "怎么让仓库早点发货",
        ],
        answers: &[
            "已为您备注加急，仓库会优先安排{P}出库。",
            "送达时间受{C}运力影响，{T}前到达无法百分之百保证。",
            "如着急使用，可以选择{L}附近门店自提。",
        ],
    },
    Family {
        category: "订单/预售",
        groups: ANY,
        questions: &[
            "预售的{P}什么时候发货", "{P}定金可以退吗", "尾款什么时候付", "预售商品能用{M}吗", "{B}{P}预售要等多久",
            "定金付了不想要了怎么办", "忘记付尾款了怎么办",
        ],
        answers: &[
            "预售{P}会在页面标注的发货时间内发出，请以商品页为准。",
            "定金在尾款支付前不予退还，因商家原因无法发货的除外。",
            "尾款支付时间为{T}开始，逾期未付订单将自动关闭。",
            "{M}可在支付尾款时使用，定金部分不能抵扣。",
        ],
    },
    Family {
        category: "售后/退货",
        groups: ANY,
        questions: &[
            "{P}怎么退货", "{B}{P}支持七天无理由退货吗", "{P}拆封了还能退吗", "退货运费谁出", "{P}退货怎么寄回去",
            "买的{P}不想要了能退吗", "{B}{P}退货需要什么条件", "{P}用过了可以退吗", "{P}退货地址是哪里",
        ],
        answers: &[
            "{P}在签收后七天内、不影响二次销售的情况下支持无理由退货。",
            "请在订单详情页点击申请售后，选择退货并填写原因。",
            "非质量问题退货运费由买家承担，购买了运费险的可按规则理赔。",
            "寄回时请附上订单号，建议使用{C}并保留单号。",
            "已拆封的{P}如影响二次销售，可能无法无理由退货。",
        ],
    },
    Family {
        category: "售后/换货",
        groups: ANY,
        questions: &[
            "{P}{A}不合适能换吗", "{P}怎么换货", "换货需要多长时间", "{P}换个{A}可以吗", "{B}{P}可以换新的吗",
            "收到的{P}想换成别的{A}", "换货要自己出运费吗",
        ],
        answers: &[
            "{P}签收后十五天内可申请换货，请保持商品完好。",
            "换货请在订单详情页提交申请，审核通过后寄回原商品。",
            "仓库收到退回的商品后{U}内寄出新商品。",
            "质量问题换货的运费由我们承担，非质量问题需自付寄回运费。",
        ],
    },
    Family {
        category: "售后/退款",
        groups: ANY,
        questions: &[
            "退款{U}了还没到账", "{Y}退款多久到账", "退款显示成功但没收到钱", "怎么查询退款进度", "{P}的退款什么时候到",
            "退款退到哪里了", "{Y}付的钱怎么退", "退款被拒绝了怎么办",
        ],
        answers: &[
            "退款会原路退回，{Y}一般1至3个工作日到账，银行卡最长7个工作日。",
            "您可以在售后详情页查看退款进度和退款流水号。",
            "如超过{U}仍未到账，请提供流水号联系{Y}客服查询。",
        ],
    },
    Family {
        category: "售后/质量问题",
        groups: ANY,
        questions: &[
            "{B}{P}{R}怎么办", "刚买的{P}就{R}", "{P}{R}能免费维修吗", "{P}{R}是质量问题吗", "{P}用了{U}就{R}",
            "新买的{B}{P}{R}", "{P}{R}可以退吗", "{P}{R}怎么处理",
        ],
        answers: &[
            "很抱歉给您带来不便，{P}{R}属于质量问题的，签收七天内可退货，十五天内可换货。",
            "请拍摄{P}的照片或视频上传到售后申请，方便我们判断原因。",
            "超过换货期的可联系{B}官方售后检测维修。",
            "检测确认为质量问题的，往返运费由我们承担。",
        ],
    },
    Family {
        category: "售后/保修",
        groups: GOODS_WITH_FAULTS,
        questions: &[
            "{B}{P}保修多久", "{P}过了保修期怎么修", "{P}保修需要发票吗", "{P}在{L}能保修吗", "{P}的{A}在保修范围内吗",
            "{B}{P}全国联保吗", "{P}保修卡丢了还能保修吗", "{P}人为损坏保修吗",
        ],
        answers: &[
            "{B}{P}整机保修一年，主要部件保修期以说明书为准。",
            "保修凭购买发票或电子订单，请妥善保存。",
            "{P}支持全国联保，{L}的授权服务网点均可办理。",
            "人为损坏、进水等不在免费保修范围内，可付费维修。",
        ],
    },
    Family {
        category: "售后/维修",
        groups: GOODS_WITH_FAULTS,
        questions: &[
            "{P}去哪里维修", "{L}有{B}售后维修点吗", "{P}维修要多少钱", "寄修{P}要多久", "{B}{P}能上门维修吗",
            "{P}坏了找谁修", "{P}换{A}多少钱",
        ],
        answers: &[
            "您可以在{B}官网查询{L}附近的授权服务中心。",
            "寄修一般{U}内修好寄回，维修进度可在服务记录中查询。",
            "维修费用需检测后确定，师傅会先报价再维修。",
            "大件{P}支持上门维修，上门费以当地网点标准为准。",
        ],
    },
    Family {
        category: "售后/少发错发",
        groups: ANY,
        questions: &[
            "收到的{P}少了配件", "{P}发错{A}了", "买了两件只收到一件", "{P}和图片不一样", "发来的{P}不是我买的{A}",
            "{B}{P}少发了赠品", "包裹里少了东西",
        ],
        answers: &[
            "请先确认是否分包发货，部分商品会由不同仓库分开寄出。",
            "确认少发或错发后，请上传包裹照片，我们会尽快为您补发。",
            "错发的{P}我们安排{C}上门取回，不需要您承担运费。",
        ],
    },
    Family {
        category: "售后/破损",
        groups: ANY,
        questions: &[
            "收到{P}外包装破损", "{P}到货有划痕", "快递压坏了{P}怎么办", "{P}破损可以拒收吗", "{B}{P}收到就是坏的",
            "{P}运输途中摔坏了", "开箱发现{P}有裂痕",
        ],
        answers: &[
            "签收时发现外包装破损可以直接拒收，我们会重新发货。",
            "已签收的请在48小时内拍照反馈，我们核实后补发或退款。",
            "运输损坏由我们向{C}追责，不会让您承担损失。",
        ],
    },
    Family {
        category: "售后/价保",
        groups: ANY,
        questions: &[
            "{P}降价了能退差价吗", "买完{P}就降价怎么办", "价保怎么申请", "{T}降价能保价吗", "{B}{P}保价多少天",
            "刚买的{P}便宜了{U}内能补吗", "价保申请失败怎么回事",
        ],
        answers: &[
            "签收后七天内同一商品降价，可在订单页申请价格保护。",
            "价保差额会退回原支付账户，{Y}支付的退回{Y}。",
            "{T}等大促活动的价格不参与价保，敬请谅解。",
        ],
    },
    Family {
        category: "售后/安装",
        groups: INSTALLED,
        questions: &[
            "{P}包安装吗", "{B}{P}怎么预约安装", "{P}安装要收费吗", "安装师傅{T}能上门吗", "{L}可以上门安装{P}吗",
            "{P}到了多久来安装", "{P}安装需要另外买材料吗", "自己能安装{P}吗",
        ],
        answers: &[
            "{B}{P}提供免费基础安装，到货后可在订单页预约安装时间。",
            "师傅会在预约前一天电话联系您，{T}也可以上门。",
            "超出标准的辅材需另行收费，师傅会按收费标准报价。",
            "{L}部分区域由第三方服务商安装，时效可能稍长。",
        ],
    },
    Family {
        category: "售后/以旧换新",
        groups: &[ELECTRONICS, APPLIANCES],
        questions: &[
            "{P}可以以旧换新吗", "旧{P}回收怎么估价", "以旧换新的补贴怎么领", "{B}{P}以旧换新能抵多少钱",
            "旧{P}不是{B}的能换吗", "以旧换新要上门取旧机吗",
        ],
        answers: &[
            "{P}支持以旧换新，下单时选择以旧换新并完成旧机估价即可。",
            "旧机由回收商上门取件，检测后补贴会返还到您的账户。",
            "非{B}品牌的旧{P}也可参与，估价以检测结果为准。",
        ],
    },
    Family {
        category: "商品/参数",
        groups: ANY,
        questions: &[
            "{B}{P}的{A}是多少", "这款{P}{A}怎么样", "{P}{A}有几种", "{P}的{A}在哪里看", "请问{P}{A}多大",
            "{B}{P}{A}和上一代比怎么样", "{P}有没有别的{A}", "{P}的{A}能选吗",
        ],
        answers: &[
            "{B}{P}的{A}请以商品详情页的规格参数为准。",
            "不同批次的{P}{A}可能略有差异，具体以实物为准。",
            "如需了解更多{A}信息，可以咨询{B}官方客服。",
        ],
    },
    Family {
        category: "商品/正品",
        groups: ANY,
        questions: &[
            "{B}{P}是正品吗", "怎么验证{P}是不是正品", "{P}有防伪码吗", "店里的{P}是官方授权的吗",
            "买到假的{B}{P}怎么办", "{P}有没有授权书", "{B}{P}支持专柜验货吗",
        ],
        answers: &[
            "本店{B}{P}均为品牌官方渠道进货，假一赔十。",
            "{P}包装上附有防伪码，可在{B}官网查询真伪。",
            "如对真伪有疑问，可申请鉴定，鉴定为假将全额退款并赔偿。",
        ],
    },
    Family {
        category: "商品/使用方法",
        groups: ANY,
        questions: &[
            "{P}怎么用", "{B}{P}第一次使用要注意什么", "{P}怎么连接手机", "{P}怎么清洗", "{P}怎么设置{A}",
            "{P}说明书在哪里下载", "{B}{P}怎么恢复出厂设置", "{P}怎么保养",
        ],
        answers: &[
            "{P}的使用方法请参考包装内的说明书，电子版可在{B}官网下载。",
            "首次使用前请充满电或清洗干净，并检查配件是否齐全。",
            "如操作中遇到问题，可以联系在线客服获取视频教程。",
        ],
    },
    Family {
        category: "商品/尺码",
        groups: WEARABLE,
        questions: &[
            "{P}尺码怎么选", "{P}偏大还是偏小", "身高{H}穿什么码", "体重{W}斤选多大的{P}", "身高{H}体重{W}穿多大",
            "{B}{P}尺码标准吗", "{P}平时穿L码选哪个",
        ],
        answers: &[
            "{B}{P}尺码偏标准，建议参考详情页尺码表选择。",
            "身高{H}左右、体重{W}斤一般选择M或L码，喜欢宽松可大一码。",
            "尺码不合适支持七天无理由换货。",
        ],
    },
    Family {
        category: "商品/库存",
        groups: ANY,
        questions: &[
            "{P}没货了什么时候补货", "{B}{P}还有现货吗", "{P}{A}缺货怎么办", "到货通知怎么设置", "{P}什么时候有货",
            "{P}显示无货是停产了吗", "{L}仓库有{P}吗",
        ],
        answers: &[
            "{P}正在补货中，预计{U}内到货，可点击到货通知。",
            "到货后系统会通过短信通知您，请留意。",
            "显示无货的{A}可能是暂时缺货，不代表停产。",
        ],
    },
    Family {
        category: "商品/保质期",
        groups: CONSUMABLE,
        questions: &[
            "{P}保质期多久", "{P}生产日期是什么时候", "{P}开封后怎么保存", "{P}过期了能退吗", "{B}{P}是新日期吗",
            "{P}保质期在哪里看", "{P}开封后能放多久",
        ],
        answers: &[
            "{B}{P}保质期以包装标注为准，我们保证发货日期新鲜。",
            "开封后请密封冷藏保存，并尽快食用或使用。",
            "收到临期或过期的{P}可以申请退款。",
        ],
    },
    Family {
        category: "商品/配件",
        groups: &[ELECTRONICS, APPLIANCES, SPORTS, BABY],
        questions: &[
            "{P}配件单独卖吗", "{P}送充电器吗", "{P}包装里有什么", "{B}{P}的配件在哪里买", "{P}的{A}能单独买吗",
            "{P}赠品什么时候发",
        ],
        answers: &[
            "{P}的包装清单请见详情页，不同版本配件可能不同。",
            "原装配件可以在{B}官方旗舰店单独购买。",
            "赠品与{P}一起发货，少发的可联系客服补寄。",
        ],
    },
    Family {
        category: "支付/支付方式",
        groups: ANY,
        questions: &[
            "可以用{Y}付款吗", "{P}支持{Y}吗", "{Y}付款失败怎么办", "为什么不能用{Y}", "{Y}支付提示异常",
            "{B}{P}能用{Y}买吗", "付款的时候{Y}选不了",
        ],
        answers: &[
            "目前支持{Y}、银行卡等多种支付方式，以收银台显示为准。",
            "支付失败请检查{Y}余额或限额，也可更换支付方式重试。",
            "部分特价商品不支持{Y}，下单页会有提示。",
        ],
    },
    Family {
        category: "支付/扣款异常",
        groups: ANY,
        questions: &[
            "付款扣了两次钱", "{Y}重复扣款怎么退", "钱扣了订单显示未付款", "扣款成功但订单没生成", "{Y}多扣了钱",
            "付了钱还显示待付款", "{P}付款后订单消失了",
        ],
        answers: &[
            "重复支付的款项系统会在24小时内自动原路退回。",
            "如订单显示未付款但已扣款，一般是支付结果延迟，请稍后刷新。",
            "超过{U}未退回的，请提供{Y}账单截图联系客服处理。",
        ],
    },
    Family {
        category: "支付/分期",
        groups: ANY,
        questions: &[
            "{P}能分期吗", "分期有手续费吗", "{I}期免息怎么选", "分期可以提前还款吗", "{Y}分期怎么操作",
            "{B}{P}支持{I}期免息吗", "分期付款能退货吗",
        ],
        answers: &[
            "{P}支持{Y}分期，{I}期免息以活动页面为准。",
            "非免息分期会收取手续费，具体费率在收银台显示。",
            "分期订单退货后，已还款项和手续费按规则退回。",
        ],
    },
    Family {
        category: "支付/货到付款",
        groups: ANY,
        questions: &[
            "支持货到付款吗", "{L}能货到付款吗", "货到付款可以刷卡吗", "{P}可以货到付款吗", "货到付款要多收钱吗",
        ],
        answers: &[
            "部分地区支持货到付款，下单时可在支付方式中选择。",
            "{L}暂不支持货到付款的，收银台不会显示该选项。",
            "货到付款可使用现金或扫码支付，不额外收费。",
        ],
    },
    Family {
        category: "支付/发票",
        groups: ANY,
        questions: &[
            "{P}怎么开发票", "发票抬头写错了怎么改", "能开增值税专用发票吗", "电子发票在哪里下载", "发票能{T}再开吗",
            "补开发票要多久", "{B}{P}发票可以开公司吗", "发票上能写明细吗",
        ],
        answers: &[
            "订单完成后可在订单详情页申请开具电子发票，{U}内发送到邮箱。",
            "抬头错误可在发票详情中申请换开，每笔订单可换开一次。",
            "企业用户可申请增值税专用发票，需要填写税号和开户行信息。",
        ],
    },
    Family {
        category: "优惠/优惠券",
        groups: ANY,
        questions: &[
            "{M}怎么领", "{M}为什么用不了", "{M}过期了还能用吗", "{P}能用{M}吗", "{M}可以叠加使用吗",
            "领的{M}在哪里看", "退货后{M}还会退回吗", "{B}{P}有{M}吗",
        ],
        answers: &[
            "{M}可在活动页面或店铺首页领取，领取后在我的卡券中查看。",
            "{M}有使用门槛和适用范围，{P}不在范围内时无法使用。",
            "过期的{M}无法恢复，退货后未过期的券会退回账户。",
        ],
    },
    Family {
        category: "优惠/活动规则",
        groups: ANY,
        questions: &[
            "{T}活动什么时候开始", "{T}满减怎么算", "{T}的价格是最低吗", "{T}买的{P}能保价吗", "{B}{P}{T}有优惠吗",
            "{T}活动和{M}能一起用吗", "{T}会比现在便宜吗",
        ],
        answers: &[
            "{T}活动时间以活动页面公示为准，届时会提前预热。",
            "满减按同一店铺内参与活动的商品金额合计计算。",
            "{M}与满减可以叠加，具体以结算页为准。",
        ],
    },
    Family {
        category: "优惠/积分",
        groups: ANY,
        questions: &[
            "积分怎么获得", "积分能抵现吗", "积分{T}会过期吗", "积分兑换{P}怎么操作", "积分没到账怎么办",
            "买{P}送多少积分", "退货后积分会扣吗",
        ],
        answers: &[
            "确认收货后按实付金额发放积分，一般{U}内到账。",
            "积分可在结算时抵扣现金，100积分抵1元。",
            "积分有效期为一年，过期自动清零，退货会扣回相应积分。",
        ],
    },
    Family {
        category: "会员/会员权益",
        groups: ANY,
        questions: &[
            "{V}怎么开通", "{V}有什么权益", "{V}自动续费怎么取消", "{V}费能退吗", "开了{V}能开发票吗",
            "{V}到期了怎么办", "{V}买{P}有折扣吗",
        ],
        answers: &[
            "{V}可在我的页面开通，开通后即刻享受专属价和免运费等权益。",
            "自动续费可在{Y}的自动扣款设置中关闭。",
            "{V}开通后未使用权益的，七天内可申请退款。",
        ],
    },
    Family {
        category: "账号/登录",
        groups: ANY,
        questions: &[
            "账号登录不上怎么办", "收不到验证码", "{T}一直提示密码错误", "换手机后怎么登录", "账号被挤下线了",
            "登录提示账号异常", "用{Y}能登录吗",
        ],
        answers: &[
            "请确认网络正常并使用最新版本app，再尝试验证码登录。",
            "收不到验证码请检查是否被拦截，{U}内最多发送5次。",
            "多次登录失败会临时锁定，请稍后再试或联系客服。",
        ],
    },
    Family {
        category: "账号/密码",
        groups: ANY,
        questions: &[
            "忘记密码怎么找回", "支付密码怎么修改", "登录密码怎么改", "密码输错被锁定了", "怎么设置支付密码",
            "忘了支付密码怎么办", "密码找回需要{D}吗",
        ],
        answers: &[
            "在登录页点击忘记密码，通过绑定手机号验证后即可重置。",
            "支付密码在账户设置的安全中心修改，需要验证身份。",
            "密码连续输错被锁定的，{U}后自动解锁。",
        ],
    },
    Family {
        category: "账号/换绑手机",
        groups: ANY,
        questions: &[
            "怎么更换绑定手机号", "原手机号不用了怎么换绑", "换绑需要验证身份吗", "手机号注销了账号怎么办",
            "换绑手机要{D}吗", "一个手机号能绑几个账号",
        ],
        answers: &[
            "在安全中心选择换绑手机号，验证原手机号后即可更换。",
            "原手机号无法接收短信的，可上传{D}照片进行人工审核。",
            "审核一般在{U}内完成，结果会短信通知您。",
        ],
    },
    Family {
        category: "账号/注销",
        groups: ANY,
        questions: &[
            "怎么注销账号", "注销后订单还能查吗", "注销账号要多久", "注销了还能恢复吗", "账号注销有什么条件",
        ],
        answers: &[
            "注销前请确认没有未完成的订单和售后，余额和积分将清零。",
            "注销申请提交后有{U}的冷静期，期间登录即可撤销。",
            "注销完成后账号信息无法恢复，订单记录也将无法查看。",
        ],
    },
    Family {
        category: "账号/实名认证",
        groups: ANY,
        questions: &[
            "实名认证失败怎么办", "实名认证要{D}吗", "可以用{D}实名吗", "一个{D}能认证几个账号", "怎么修改实名信息",
            "{D}过期了实名怎么办", "未成年能实名认证吗",
        ],
        answers: &[
            "实名认证支持{D}等有效证件，请确保照片清晰完整。",
            "一个证件最多可认证三个账号。",
            "认证失败多为信息不一致，请核对姓名和证件号码后重试。",
        ],
    },
    Family {
        category: "账号/账号安全",
        groups: ANY,
        questions: &[
            "账号被盗了怎么办", "收到陌生的登录提醒", "账号被冻结怎么解冻", "有人冒充客服让我转账",
            "账号在{L}登录了不是我", "账号有异常消费",
        ],
        answers: &[
            "请立即修改密码并退出所有设备，我们会协助冻结异常订单。",
            "官方客服不会要求您转账或提供验证码，请谨防诈骗。",
            "账号解冻需要完成身份验证，一般{U}内处理完毕。",
        ],
    },
    Family {
        category: "账号/隐私设置",
        groups: ANY,
        questions: &[
            "怎么删除浏览记录", "收货地址怎么删除", "怎么关闭个性化推荐", "怎么关掉短信通知", "不想收到营销电话",
            "怎么隐藏购买记录",
        ],
        answers: &[
            "在设置的隐私中心可以清除浏览记录和管理推荐开关。",
            "短信和电话营销可在消息设置中关闭，{U}内生效。",
            "收货地址在地址管理中左滑即可删除。",
        ],
    },
    Family {
        category: "平台/app故障",
        groups: ANY,
        questions: &[
            "app{E}怎么办", "{T}app{E}", "手机上app总是{E}", "app一打开就{E}", "更新后app{E}", "小程序{E}",
        ],
        answers: &[
            "请先将app更新到最新版本，并清理缓存后重启。",
            "如仍然{E}，可以卸载重装或换用网页版。",
            "问题持续的话请在意见反馈中上传截图，技术人员会尽快处理。",
        ],
    },
    Family {
        category: "平台/联系客服",
        groups: ANY,
        questions: &[
            "人工客服怎么联系", "客服电话是多少", "{T}有客服吗", "怎么转人工", "在线客服{T}上班吗",
            "{B}客服在哪里找", "客服一直不回复",
        ],
        answers: &[
            "在线客服服务时间为每天8点至24点，{T}也有值班客服。",
            "在对话中输入转人工即可接入人工客服。",
            "高峰期排队较长，请耐心等待，也可以留言我们会回电。",
        ],
    },
    Family {
        category: "平台/投诉",
        groups: ANY,
        questions: &[
            "我要投诉{C}快递员", "怎么投诉商家", "投诉多久处理", "对处理结果不满意怎么办", "投诉{B}客服态度差",
            "怎么投诉送货上门收费",
        ],
        answers: &[
            "您可以在订单详情页选择投诉，填写具体情况并上传凭证。",
            "投诉会在{U}内处理完毕，处理结果将短信通知您。",
            "对结果不满意可申请复核，我们会安排专人跟进。",
        ],
    },
    Family {
        category: "平台/评价",
        groups: ANY,
        questions: &[
            "怎么给{P}写评价", "评价可以修改吗", "追评在哪里", "晒图评价有奖励吗", "差评能删除吗", "{B}{P}怎么评价不了",
        ],
        answers: &[
            "确认收货后可在订单页评价，{U}内可以追加评价。",
            "评价发布后不可修改，但可以追评补充说明。",
            "优质晒图评价可获得积分奖励。",
        ],
    },
    Family {
        category: "平台/门店",
        groups: ANY,
        questions: &[
            "{L}有线下门店吗", "门店营业时间是几点", "门店可以自提吗", "{L}门店地址在哪", "{B}{P}门店有现货吗",
            "{T}门店开门吗", "门店和网上价格一样吗",
        ],
        answers: &[
            "{L}门店地址可在门店查询页面搜索，营业时间一般为10点至22点。",
            "线上下单可选择门店自提，到店出示取件码即可。",
            "门店与线上价格可能因活动不同略有差异。",
        ],
    },
    Family {
        category: "生活服务/证件办理",
        groups: ANY,
        questions: &[
            "{D}怎么办理", "{D}丢了怎么补办", "补办{D}需要什么材料", "{D}在{L}能办吗", "{D}办理要多久", "{D}过期了怎么换",
            "异地可以办{D}吗", "{D}能网上办理吗",
        ],
        answers: &[
            "办理{D}需携带本人有效证件到政务服务大厅，部分业务支持网上预约。",
            "补办{D}一般需要{U}左右，加急可缩短办理时间。",
            "{L}已开通异地办理，具体材料以当地政务网站公布为准。",
        ],
    },
    Family {
        category: "生活服务/通信业务",
        groups: ANY,
        questions: &[
            "{S}怎么办理", "{S}怎么取消", "{S}每月多少钱", "{S}{T}生效吗", "怎么查询{S}", "{S}能在网上办吗",
            "{S}退订要收费吗",
        ],
        answers: &[
            "{S}可通过营业厅app或拨打客服热线办理，办理后次月生效。",
            "退订{S}不收取费用，当月已扣费用不退。",
            "具体资费以当地营业厅公布为准。",
        ],
    },
    Family {
        category: "生活服务/银行卡",
        groups: ANY,
        questions: &[
            "银行卡{K}怎么办", "信用卡{K}", "储蓄卡{K}怎么处理", "{L}可以补办银行卡吗", "银行卡{K}要去柜台吗",
        ],
        answers: &[
            "银行卡{K}的，请先拨打发卡行客服电话进行挂失或咨询。",
            "补办需要本人携带{D}到任意网点办理，工本费以银行公布为准。",
            "解除限制一般需要{U}，请耐心等待银行审核。",
        ],
    },
    Family {
        category: "生活服务/缴费",
        groups: ANY,
        questions: &[
            "{X}怎么交", "{X}在网上能交吗", "{X}欠费了怎么办", "怎么查询{X}余额", "{X}交错了能退吗", "{T}能交{X}吗",
            "用{Y}怎么交{X}",
        ],
        answers: &[
            "{X}可通过{Y}生活缴费或营业厅app缴纳，实时到账。",
            "欠费超过{U}可能停止服务，请及时缴纳。",
            "缴费错误可联系收费单位申请退款或转入下期。",
        ],
    },
    Family {
        category: "生活服务/寄件",
        groups: ANY,
        questions: &[
            "怎么寄快递到{L}", "寄{P}到{L}多少钱", "{C}上门取件怎么预约", "寄件能保价吗", "哪些东西不能寄",
            "寄{P}需要包装吗", "{C}寄件{T}能取件吗",
        ],
        answers: &[
            "在寄件页面填写收寄地址后即可预约{C}上门取件。",
            "寄往{L}的运费按重量和距离计算，页面会显示预估价格。",
            "贵重物品建议保价，保价费为声明价值的百分之一。",
        ],
    },
    Family {
        category: "生活服务/出行",
        groups: ANY,
        questions: &[
            "机票怎么退改", "{L}的酒店能取消吗", "火车票改签要手续费吗", "{T}的机票能退吗", "行李超重怎么收费",
            "去{L}的航班延误了怎么办", "酒店预订了能改日期吗",
        ],
        answers: &[
            "退改规则以购票时显示的条款为准，{T}出行的航班改签可能较紧张。",
            "酒店在最晚取消时间前可免费取消，超时会扣除首晚房费。",
            "航班延误可在订单页申请延误补偿或免费改签。",
        ],
    },
    Family {
        category: "生活服务/外卖",
        groups: ANY,
        questions: &[
            "外卖送错了怎么办", "外卖超时能赔吗", "{T}能点外卖吗", "外卖少送了东西", "骑手把餐洒了怎么办",
            "外卖里吃出异物", "{L}能送外卖吗",
        ],
        answers: &[
            "外卖问题可在订单页申请售后，商家会在{U}内处理。",
            "超时送达的订单可获得超时赔付红包。",
            "餐品有质量问题请拍照保留证据并及时反馈。",
        ],
    },
    Family {
        category: "售后/运费险",
        groups: ANY,
        questions: &[
            "{P}运费险怎么理赔", "运费险什么时候到账", "运费险赔多少钱", "退货没有运费险怎么办", "运费险理赔失败了",
            "{B}{P}有运费险吗",
        ],
        answers: &[
            "退货寄回并上传单号后，运费险会在{U}内自动理赔到{Y}。",
            "理赔金额按发货地与收货地之间的首重运费计算。",
            "理赔失败多为未在规定时间内寄回，可联系保险公司客服。",
        ],
    },
    Family {
        category: "生活服务/课程",
        groups: ANY,
        questions: &[
            "课程怎么退费", "课程有效期多久", "课程能回放吗", "怎么下载课件", "课程能换老师吗", "买了课程{T}能上课吗",
        ],
        answers: &[
            "开课前可申请全额退费，开课后按剩余课时比例退费。",
            "课程有效期为购买后一年，期间可以无限次回放。",
            "课件在课程详情页下载，需要使用电脑端打开。",
        ],
    },
];

/// Closing sentences that pad answers to a realistic length.
const ANSWER_TAILS: &[&str] = &[
    "如有其他问题，请随时联系在线客服。",
    "感谢您的耐心等待，祝您购物愉快。",
    "给您带来不便，我们深表歉意。",
    "具体规则以页面公示为准。",
    "更多详情可在帮助中心查看。",
    "如需人工协助，请在对话框输入转人工。",
    "处理结果会通过短信通知您，请留意查收。",
    "我们会持续跟进，直到问题解决。",
    "请保留好相关凭证，以便后续处理。",
    "您也可以拨打客服热线咨询。",
];

/// How knowledge-base editors dress up a paraphrase ("相似问法").
const KB_PREFIXES: &[&str] = &["请问", "我想问一下", "想咨询一下", "你好", "问一下", "想了解"];
const KB_SUFFIXES: &[&str] = &["呢", "啊", "呀"];

// ------------------------------------------------------------------------- knowledge base

/// The slot values of one article, shared by its title and paraphrases.
struct Slots {
    group: usize,
    values: [&'static str; 19],
    /// The product as written: sometimes with a model code ("Mate60手机"), which gives the
    /// vocabulary the long tail of rare terms real catalogues have.
    product: String,
}

const SLOT_KEYS: &[u8; 19] = b"PBARLTUCYMVDSEKXHWI";

impl Slots {
    fn draw(rng: &mut Rng, family: &Family) -> Slots {
        let group = if family.groups.is_empty() {
            rng.zipf_index(GROUPS.len())
        } else {
            family.groups[rng.zipf_index(family.groups.len())]
        };
        let g = &GROUPS[group];
        let base = rng.zipf(g.products);
        let product = if MODEL_GROUPS.contains(&group) && rng.chance(0.4) {
            format!("{}{}", model_code(rng), base)
        } else {
            base.to_string()
        };
        Slots {
            group,
            product,
            values: [
                base,
                rng.zipf(g.brands),
                rng.zipf(g.attrs),
                rng.zipf(g.problems),
                rng.zipf(PLACES),
                rng.zipf(WHEN),
                rng.zipf(SPANS),
                rng.zipf(COURIERS),
                rng.zipf(PAYMENTS),
                rng.zipf(COUPONS),
                rng.zipf(MEMBERSHIPS),
                rng.zipf(DOCUMENTS),
                rng.zipf(TELECOM),
                rng.zipf(APP_ERRORS),
                rng.zipf(CARD_ISSUES),
                rng.zipf(BILLS),
                rng.pick(HEIGHTS),
                rng.pick(WEIGHTS),
                rng.zipf(INSTALMENTS),
            ],
        }
    }

    fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let key = rest.as_bytes()[open + 1];
            let slot = SLOT_KEYS.iter().position(|&k| k == key).expect("templates use known slots");
            out.push_str(if key == b'P' { &self.product } else { self.values[slot] });
            rest = &rest[open + 3..];
        }
        out.push_str(rest);
        out
    }

    /// The product line when the questions name a product or brand, then the values of the
    /// slots the questions use: tags name only what the article is about.
    fn tags(&self, templates: &[&str]) -> Vec<String> {
        let mut tags = Vec::new();
        if templates.iter().any(|t| t.contains("{P}") || t.contains("{B}")) {
            tags.push(GROUPS[self.group].name.to_string());
        }
        for (i, key) in SLOT_KEYS.iter().enumerate() {
            let marker = format!("{{{}}}", *key as char);
            if templates.iter().any(|t| t.contains(&marker)) {
                tags.push(if *key == b'P' { self.product.clone() } else { self.values[i].to_string() });
            }
        }
        tags.dedup();
        tags
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// `n` articles, deterministic in `seed`. Every question (title or paraphrase) is unique
/// across the knowledge base, as an editor would keep it; questions are 6–30 characters,
/// answers 40–200.
pub fn knowledge(n: usize, seed: u64) -> Vec<Article> {
    let mut rng = Rng::new(seed);
    let mut seen: HashSet<String> = HashSet::with_capacity(n * 3);
    let mut out = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while out.len() < n {
        attempts += 1;
        assert!(attempts < n * 200 + 10_000, "the templates cannot produce {n} distinct articles");
        // Half uniform, half Zipf over intents: popular intents have many entries (one per
        // product and brand), without a single intent swallowing the knowledge base.
        let family = if rng.chance(0.5) {
            &FAMILIES[rng.below(FAMILIES.len())]
        } else {
            &FAMILIES[rng.zipf_index(FAMILIES.len())]
        };
        let slots = Slots::draw(&mut rng, family);
        let mut order: Vec<usize> = (0..family.questions.len()).collect();
        rng.shuffle(&mut order);
        let candidates: Vec<(usize, String)> = order
            .iter()
            .map(|&i| (i, slots.fill(family.questions[i])))
            .filter(|(_, q)| (6..=30).contains(&char_len(q)))
            .collect();
        let Some(title_at) = candidates.iter().position(|(_, q)| !seen.contains(q)) else { continue };
        let title = candidates[title_at].1.clone();
        seen.insert(title.clone());
        let mut used = vec![family.questions[candidates[title_at].0]];
        // 0–4 paraphrases, most articles having one to three.
        let want = [0, 1, 1, 2, 2, 2, 3, 3, 4, 4][rng.below(10)];
        let mut similar = Vec::new();
        for (template, q) in candidates.iter().skip(title_at + 1) {
            if similar.len() == want {
                break;
            }
            // Editors dress some paraphrases up; a generic one ("退货运费谁出") that another
            // article already owns gets dressed rather than duplicated.
            let plain = q.clone();
            let dressed = if rng.chance(0.6) {
                format!("{}{}", rng.pick(KB_PREFIXES), q)
            } else {
                format!("{q}{}", rng.pick(KB_SUFFIXES))
            };
            let options = if rng.chance(0.25) { [dressed, plain] } else { [plain, dressed] };
            if let Some(q) = options.into_iter().find(|q| char_len(q) <= 30 && !seen.contains(q)) {
                seen.insert(q.clone());
                similar.push(q);
                used.push(family.questions[*template]);
            }
        }
        let answer = answer(&mut rng, family, &slots);
        let tags = slots.tags(&used);
        out.push(Article {
            id: format!("kb-{:06}", out.len() + 1),
            title,
            similar,
            answer,
            category: family.category.to_string(),
            tags,
            keywords: Vec::new(),
        });
    }
    out
}

/// An answer of 40–200 characters: some of the intent's sentences in random order, padded
/// with closing sentences.
fn answer(rng: &mut Rng, family: &Family, slots: &Slots) -> String {
    let mut order: Vec<usize> = (0..family.answers.len()).collect();
    rng.shuffle(&mut order);
    let take = rng.range(1, order.len());
    let mut text = String::new();
    for &i in &order[..take] {
        let s = slots.fill(family.answers[i]);
        if char_len(&text) + char_len(&s) > 200 {
            break;
        }
        text.push_str(&s);
    }
    let tails = rng.range(0, 2);
    for _ in 0..tails {
        let t = rng.pick(ANSWER_TAILS);
        if char_len(&text) + char_len(t) <= 200 {
            text.push_str(t);
        }
    }
    while char_len(&text) < 40 {
        text.push_str(rng.pick(ANSWER_TAILS));
    }
    text
}

// ---------------------------------------------------------------------------------- queries

/// Words the query rewriter knows, besides every slot value: enough for a greedy longest-match
/// segmentation of the questions so whole words can be dropped, swapped or replaced.
const COMMON_WORDS: &[&str] = &[
    "怎么", "怎么办", "如何", "什么时候", "多久", "可以", "能不能", "吗", "了", "的", "我", "我的", "想", "要", "还",
    "没", "没有", "需要", "多少钱", "多少", "哪里", "在", "下单", "发货", "退货", "换货", "退款", "到账", "订单",
    "快递", "物流", "收到", "签收", "取消", "修改", "地址", "发票", "开发票", "保修", "维修", "安装", "支持", "是不是",
    "为什么", "什么", "能", "就", "刚买", "买的", "新买", "请问", "一下", "已经", "还能", "怎么样", "哪个", "几天",
    "运费", "包邮", "质量问题", "免费", "密码", "账号", "登录", "验证码", "积分", "客服", "人工", "投诉", "评价",
    "门店", "预约", "上门", "配送", "包裹", "一直", "显示", "更新", "信息", "申请", "办理", "补办", "查询", "使用",
    "用", "买", "卖", "送", "寄", "换", "退", "修", "开", "付款", "支付", "分期", "免息", "手续费", "活动", "优惠",
    "价格", "降价", "差价", "保价", "尺码", "现货", "补货", "缺货", "保质期", "正品", "说明书", "配件", "赠品",
    "不想要", "不合适", "拆封", "用过", "过期", "破损", "坏了", "少了", "错了", "不一样", "有", "是", "都", "也",
    "这款", "这个", "你们", "你们家", "现在", "以后", "之前", "后", "能否", "时候", "东西", "钱",
];

/// Colloquial and sloppy rewrites customers actually type, with typos included.
const REPLACEMENTS: &[(&str, &[&str])] = &[
    ("怎么", &["咋", "如何", "怎样", "要怎么"]),
    ("怎么办", &["咋办", "怎么处理", "如何处理", "该怎么办"]),
    ("如何", &["怎么", "咋"]),
    ("可以", &["能", "行不行", "可不可以"]),
    ("能", &["可以", "能不能"]),
    ("吗", &["不", "么", "没"]),
    ("多久", &["多长时间", "几天", "要多久"]),
    ("什么时候", &["啥时候", "几时", "哪天"]),
    ("什么", &["啥"]),
    ("为什么", &["为啥", "怎么"]),
    ("多少钱", &["多少", "什么价", "贵不贵"]),
    ("退款", &["退钱", "返款"]),
    ("快递", &["包裹", "物流", "快件"]),
    ("发货", &["发出", "寄出", "出库"]),
    ("收到", &["拿到", "收着"]),
    ("没有", &["没"]),
    ("取消", &["撤销", "不要"]),
    ("修改", &["更改", "改"]),
    ("查询", &["查", "查看"]),
    ("账号", &["帐号", "账户"]),
    ("优惠券", &["优惠卷", "券"]),
    ("客服", &["人工客服", "售后"]),
    ("订单", &["单子", "订单号"]),
    ("坏了", &["有毛病", "出问题了"]),
    ("保修", &["质保", "保修期"]),
    ("维修", &["修", "修理"]),
    ("发票", &["票", "发漂"]),
    ("地址", &["收货地址"]),
    ("换货", &["换"]),
    ("退货", &["退", "退回去"]),
    ("需要", &["要", "得"]),
    ("已经", &["都"]),
    ("我", &["我这边", "俺"]),
];

/// Fillers that open or close a customer message.
const QUERY_PREFIXES: &[&str] = &[
    "请问", "亲", "你好", "您好", "在吗", "客服", "亲亲", "麻烦问一下", "我想问下", "问一下", "那个", "哈喽",
    "你好请问", "在吗在吗", "客服你好", "亲在吗", "我想咨询下", "急",
];
const QUERY_SUFFIXES: &[&str] = &[
    "啊", "呢", "呀", "吗", "哈", "啊亲", "急", "谢谢", "在线等", "？", "？？", "呢亲", "嘛", "谢谢啦", "急急急", "！",
];
/// Context customers add before the question.
const QUERY_CONTEXT: &[&str] = &["我昨天买的", "前几天下的单", "刚刚", "我朋友说", "上周买了", "我妈", "我家"];

/// Off-topic chatter and questions for other services: the knowledge base has no answer.
const OFF_TOPIC: &[&str] = &[
    "{c}今天天气怎么样", "{c}有什么好吃的", "帮我写一首关于{n}的诗", "讲个笑话", "你是机器人吗", "你叫什么名字",
    "{k}股票能买吗", "{f}怎么做好吃", "推荐几部{g}电影", "{t}昨天比赛谁赢了", "高考{s}怎么复习", "附近有没有{p}",
    "怎么减肥最快", "失眠了怎么办", "感冒了吃什么药", "{a}能活多久", "世界上最高的山是哪座", "今天星期几",
    "你们老板是谁", "我想辞职怎么办", "{c}到{c}坐高铁要多久", "怎么学好{l}", "周末去哪里玩", "房价还会跌吗",
    "{v}和{v}哪个好", "孩子不爱写作业怎么办", "{a}不吃东西怎么办", "帮我翻译一下{n}", "{c}哪里好玩", "怎么考驾照",
    "什么星座最好", "你喜欢{n}吗", "我好无聊陪我聊天", "{f}的热量高吗", "今年过年放几天假", "{k}的老板是谁",
    "怎么写简历", "程序员工资高吗", "{s}考试不及格怎么办", "养{a}要注意什么", "{c}的房租贵吗", "怎么做PPT",
    "地球为什么是圆的", "人为什么要睡觉", "{g}电影有哪些推荐", "你会唱歌吗", "明天会下雨吗", "{c}的大学排名",
    "{v}的油耗是多少", "火锅底料怎么炒", "怎么提高记忆力", "考研{s}难吗", "你觉得我帅吗", "给我推荐一本书",
    "{t}什么时候有比赛", "一加一等于几", "我失恋了", "怎么跟老板提加薪", "{c}的地铁几点停运",
];
const OT_CITIES: &[&str] = &["北京", "上海", "成都", "杭州", "西安", "长沙", "厦门", "大理", "桂林", "青岛", "重庆", "南京"];
const OT_NOUNS: &[&str] = &["春天", "大海", "月亮", "秋天", "故乡", "猫", "爱情", "星空", "雨", "友谊"];
const OT_STOCKS: &[&str] = &["茅台", "腾讯", "宁德时代", "比亚迪", "阿里巴巴", "中国平安", "招商银行"];
const OT_FOODS: &[&str] = &["红烧肉", "糖醋排骨", "鱼香肉丝", "麻婆豆腐", "番茄炒蛋", "可乐鸡翅", "酸菜鱼", "饺子", "蛋糕"];
const OT_GENRES: &[&str] = &["科幻", "恐怖", "喜剧", "爱情", "动画", "悬疑", "战争", "纪录"];
const OT_TEAMS: &[&str] = &["湖人", "皇马", "国足", "广东队", "巴萨", "勇士", "曼联"];
const OT_SUBJECTS: &[&str] = &["数学", "英语", "物理", "化学", "语文", "历史", "政治"];
const OT_PLACES: &[&str] = &["医院", "加油站", "电影院", "健身房", "公园", "银行", "超市", "理发店"];
const OT_ANIMALS: &[&str] = &["猫", "狗", "仓鼠", "乌龟", "兔子", "鹦鹉", "金鱼"];
const OT_LANGS: &[&str] = &["英语", "日语", "韩语", "法语", "编程", "钢琴", "吉他"];
const OT_VEHICLES: &[&str] = &["特斯拉", "比亚迪汉", "宝马3系", "奥迪A4", "丰田凯美瑞", "本田雅阁", "理想L7"];

fn off_topic(rng: &mut Rng) -> String {
    let template = rng.pick(OFF_TOPIC);
    let mut out = String::new();
    let mut rest: &str = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let list: &[&str] = match rest.as_bytes()[open + 1] {
            b'c' => OT_CITIES,
            b'n' => OT_NOUNS,
            b'k' => OT_STOCKS,
            b'f' => OT_FOODS,
            b'g' => OT_GENRES,
            b't' => OT_TEAMS,
            b's' => OT_SUBJECTS,
            b'p' => OT_PLACES,
            b'a' => OT_ANIMALS,
            b'l' => OT_LANGS,
            _ => OT_VEHICLES,
        };
        // "北京到北京坐高铁" would be silly: a repeated slot gets another value.
        let mut value = rng.pick(list);
        while out.contains(value) {
            value = rng.pick(list);
        }
        out.push_str(value);
        rest = &rest[open + 3..];
    }
    out.push_str(rest);
    out
}

/// Greedy longest-match segmentation over the known words; unknown characters stand alone.
struct Segmenter {
    words: HashSet<&'static str>,
    max_chars: usize,
}

impl Segmenter {
    fn new() -> Segmenter {
        let mut words: HashSet<&'static str> = HashSet::new();
        for g in GROUPS {
            for list in [g.products, g.brands, g.attrs, g.problems] {
                words.extend(list.iter().copied());
            }
        }
        for list in [
            PLACES, WHEN, SPANS, COURIERS, PAYMENTS, COUPONS, MEMBERSHIPS, DOCUMENTS, TELECOM, APP_ERRORS, CARD_ISSUES,
            BILLS, COMMON_WORDS, KB_PREFIXES, DROPPABLE,
        ] {
            words.extend(list.iter().copied());
        }
        let max_chars = words.iter().map(|w| char_len(w)).max().unwrap_or(1);
        Segmenter { words, max_chars }
    }

    fn cut(&self, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let mut len = (chars.len() - i).min(self.max_chars);
            while len > 1 {
                let w: String = chars[i..i + len].iter().collect();
                if self.words.contains(w.as_str()) {
                    break;
                }
                len -= 1;
            }
            out.push(chars[i..i + len].iter().collect());
            i += len;
        }
        out
    }
}

/// Words a customer leaves out without changing the question: function words and brands.
const DROPPABLE: &[&str] = &[
    "的", "了", "我", "我的", "一下", "请问", "还", "就", "都", "已经", "你们", "你们家", "这款", "这个", "在", "是",
    "也", "刚买", "买的", "新买", "现在", "请", "我想问一下", "想咨询一下", "你好", "问一下", "想了解",
];

/// Rewrites a knowledge-base question the way a customer would type it: at least one of
/// replace / drop / swap a word, plus particles and context. Only whole known words move,
/// so the result stays readable.
fn paraphrase(rng: &mut Rng, seg: &Segmenter, question: &str) -> String {
    let mut words = seg.cut(question);
    let known = |w: &str| seg.words.contains(w);
    let mut changed = false;
    for _ in 0..3 {
        if changed && rng.chance(0.6) {
            break;
        }
        match rng.below(3) {
            0 => {
                let replaceable: Vec<usize> =
                    (0..words.len()).filter(|&i| REPLACEMENTS.iter().any(|(w, _)| *w == words[i])).collect();
                if !replaceable.is_empty() {
                    let i = replaceable[rng.below(replaceable.len())];
                    let (_, alts) = REPLACEMENTS.iter().find(|(w, _)| *w == words[i]).expect("found above");
                    words[i] = rng.pick(alts).to_string();
                    changed = true;
                }
            }
            1 => {
                let brands = |w: &str| GROUPS.iter().any(|g| g.brands.contains(&w));
                let droppable: Vec<usize> =
                    (0..words.len()).filter(|&i| DROPPABLE.contains(&words[i].as_str()) || brands(&words[i])).collect();
                if !droppable.is_empty() && words.len() > 2 {
                    words.remove(droppable[rng.below(droppable.len())]);
                    changed = true;
                }
            }
            _ => {
                // Swap two adjacent known content words, or move the topic to the end
                // ("无法开机怎么办，华为手机"); cuts fall only between known words.
                let cuts: Vec<usize> = (1..words.len())
                    .filter(|&i| known(&words[i - 1]) && known(&words[i]) && char_len(&words[i - 1]) > 1 && char_len(&words[i]) > 1)
                    .collect();
                if !cuts.is_empty() {
                    let cut = cuts[rng.below(cuts.len())];
                    if rng.chance(0.6) {
                        words.swap(cut - 1, cut);
                    } else {
                        let tail = words.split_off(cut);
                        let head = std::mem::replace(&mut words, tail);
                        words.push("，".to_string());
                        words.extend(head);
                    }
                    changed = true;
                }
            }
        }
    }
    let mut text = words.concat();
    if rng.chance(0.15) {
        text = format!("{}{}", rng.pick(QUERY_CONTEXT), text);
    }
    if rng.chance(0.45) || !changed {
        let p = rng.pick(QUERY_PREFIXES);
        text = if rng.chance(0.5) { format!("{p}，{text}") } else { format!("{p}{text}") };
    }
    if rng.chance(0.45) {
        text.push_str(rng.pick(QUERY_SUFFIXES));
    }
    text
}

/// `n` distinct queries: ~80 % colloquial rewrites of a random article's questions (labelled
/// with that article's id), ~20 % off-topic (labelled `None`). Deterministic in `seed`.
pub fn queries(articles: &[Article], n: usize, seed: u64) -> Vec<(String, Option<String>)> {
    assert!(!articles.is_empty(), "queries need articles");
    let mut rng = Rng::new(seed ^ 0xA5A5_5A5A_0F0F_F0F0);
    let seg = Segmenter::new();
    // Queries must be unique: scorers key results by query text.
    let mut seen: HashSet<String> = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while out.len() < n {
        // The kind is drawn first and retried until unique, so duplicates (off-topic
        // chatter repeats more often) do not shrink the ~20 % share.
        let off = rng.chance(0.2);
        loop {
            attempts += 1;
            assert!(attempts < n * 100 + 10_000, "cannot produce {n} distinct queries");
            let (query, expected) = if off {
                let mut q = off_topic(&mut rng);
                if rng.chance(0.5) {
                    q = format!("{}{}", rng.pick(QUERY_PREFIXES), q);
                }
                if rng.chance(0.5) {
                    q.push_str(rng.pick(QUERY_SUFFIXES));
                }
                (q, None)
            } else {
                let a = &articles[rng.below(articles.len())];
                let questions: Vec<&str> = a.questions().collect();
                let q = questions[rng.below(questions.len())];
                (paraphrase(&mut rng, &seg, q), Some(a.id.clone()))
            };
            if seen.insert(query.clone()) {
                out.push((query, expected));
                break;
            }
        }
    }
    out
}

// ----------------------------------------------------------------------------------- files

/// Writes articles in kefu's JSONL import format
/// (`{"id","question","similar_questions","answer","category","tags"}` per line).
pub fn write_knowledge(articles: &[Article], path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for a in articles {
        let line = serde_json::json!({
            "id": a.id,
            "question": a.title,
            "similar_questions": a.similar,
            "answer": a.answer,
            "category": a.category,
            "tags": a.tags,
        });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes labelled queries as `{"query","expected"}` lines (`kefu eval`, `ask --batch` and
/// the benchmark scorer all read this).
pub fn write_queries(queries: &[(String, Option<String>)], path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (query, expected) in queries {
        serde_json::to_writer(&mut out, &serde_json::json!({ "query": query, "expected": expected }))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Whether cargo runs the bench for real (`cargo bench` passes `--bench`) rather than as a
/// smoke test (`cargo test --benches`), and the knowledge-base size that goes with it:
/// 100k articles when benchmarking, 2k otherwise, `KEFU_BENCH_ARTICLES` overriding both.
#[allow(dead_code)] // examples include this module without using every function
pub fn bench_size() -> (bool, usize) {
    let args: Vec<String> = std::env::args().collect();
    let benchmarking = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list");
    let articles = std::env::var("KEFU_BENCH_ARTICLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 100_000 } else { 2_000 });
    (benchmarking, articles)
}
