//! Every UI string, in English and Simplified Chinese.
//!
//! The language is a signal that starts as English on the server and in the browser alike, so the
//! hydrated markup matches the server's; [`I18n::detect`] switches it after mount from
//! `navigator.language` (anything starting with `zh` is Chinese).

use leptos::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// Picks the language for a BCP 47 tag such as `zh-TW` or `en-US`.
    pub fn from_tag(tag: &str) -> Self {
        if tag.trim().to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    pub fn html_tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

/// The keys of the string table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    // widget
    Greeting,
    GreetingSub,
    TypicalReply,
    AgentsOnline,
    Close,
    TypeMessage,
    Send,
    Sending,
    Sent,
    Failed,
    Retry,
    Reconnecting,
    Typing,
    ChatUnavailable,
    PoweredBy,
    // console
    Console,
    SignIn,
    SignInTitle,
    SignInSub,
    Email,
    Password,
    SigningIn,
    LoginFailed,
    LogOut,
    Inbox,
    OpenTab,
    ResolvedTab,
    NoConversations,
    PickConversation,
    PickConversationSub,
    VisitorLabel,
    Back,
    Resolve,
    Reopen,
    Reply,
    InternalNote,
    NoteToggle,
    NotePlaceholder,
    ReplyPlaceholder,
    VisitorPanel,
    Name,
    CurrentPage,
    Referrer,
    Browser,
    Os,
    Ip,
    Locale,
    LocalTime,
    Unknown,
    Details,
    JustNow,
    MinutesAgo,
    HoursAgo,
    DaysAgo,
    NoMessagesYet,
    Loading,
    StatusOpen,
    StatusPending,
    StatusResolved,
    StatusSnoozed,
    You,
    Bot,
    System,
    // bot
    Handoff,
    Suggestions,
    ContactTitle,
    ContactSub,
    Phone,
    ContactNote,
    ContactSubmit,
    ContactNeedOne,
    ContactThanks,
    BotAnswering,
    BotAdmin,
    BotAdminTitle,
    AdminsOnly,
    Site,
    NoSites,
    BotEnabled,
    BotName,
    Engine,
    EngineRetrieval,
    EngineWebhook,
    EngineLlm,
    Threshold,
    ThresholdHelp,
    Welcome,
    HandoffWords,
    Packs,
    PackPairs,
    WebhookUrl,
    WebhookSecret,
    LlmBaseUrl,
    LlmModel,
    LlmApiKey,
    SecretSet,
    Save,
    Saving,
    Saved,
    Cancel,
    Edit,
    Delete,
    ConfirmDelete,
    TryIt,
    TryPlaceholder,
    Intent,
    Confidence,
    Entities,
    Answer,
    HandsOver,
    Yes,
    No,
    NoneFound,
    QaPairs,
    QaSearch,
    QaAdd,
    QaEdit,
    QaQuestions,
    QaQuickReplies,
    QaHandoff,
    QaDecline,
    QaDeclineHelp,
    QaPlaceholders,
    Declines,
    QaNeedQuestionAndAnswer,
    QaNeedQuestion,
    QaTotal,
    NoQa,
    FromPack,
    OwnPair,
    MoreQuestions,
    Previous,
    Next,
    Import,
    ImportHelp,
    ImportNotUtf8,
    Imported,
    Importing,
    Unanswered,
    NoUnanswered,
    CreateQa,
    Dismiss,
    Language,
    PacksAll,
    SiteSettings,
    Refresh,
}

/// The table: key → (English, Chinese). `{n}` is replaced by a number where a string has one.
pub fn pair(k: K) -> (&'static str, &'static str) {
    match k {
        K::Greeting => ("Hi there 👋", "你好 👋"),
        K::GreetingSub => (
            "Ask us anything. We're happy to help.",
            "有什么可以帮您？请随时留言。",
        ),
        K::TypicalReply => (
            "We typically reply in a few minutes",
            "我们通常几分钟内回复",
        ),
        K::AgentsOnline => ("We're online", "客服在线"),
        K::Close => ("Close chat", "关闭聊天"),
        K::TypeMessage => ("Write a message…", "输入消息…"),
        K::Send => ("Send", "发送"),
        K::Sending => ("Sending…", "发送中…"),
        K::Sent => ("Sent", "已发送"),
        K::Failed => ("Not sent", "发送失败"),
        K::Retry => ("Retry", "重试"),
        K::Reconnecting => ("Reconnecting…", "正在重新连接…"),
        K::Typing => ("typing…", "正在输入…"),
        K::ChatUnavailable => ("Chat is unavailable right now.", "聊天暂时不可用。"),
        K::PoweredBy => ("Powered by Kefu", "由 Kefu 提供支持"),
        K::Console => ("Kefu console", "Kefu 客服台"),
        K::SignIn => ("Sign in", "登录"),
        K::SignInTitle => ("Sign in to Kefu", "登录 Kefu"),
        K::SignInSub => ("Answer your visitors in real time.", "实时回复您的访客。"),
        K::Email => ("Email", "邮箱"),
        K::Password => ("Password", "密码"),
        K::SigningIn => ("Signing in…", "正在登录…"),
        K::LoginFailed => ("Sign-in failed", "登录失败"),
        K::LogOut => ("Log out", "退出登录"),
        K::Inbox => ("Conversations", "会话"),
        K::OpenTab => ("Open", "进行中"),
        K::ResolvedTab => ("Resolved", "已解决"),
        K::NoConversations => ("No conversations yet", "暂无会话"),
        K::PickConversation => ("No conversation selected", "未选择会话"),
        K::PickConversationSub => (
            "Pick one from the list to start replying.",
            "从左侧列表选择一个会话开始回复。",
        ),
        K::VisitorLabel => ("Visitor", "访客"),
        K::Back => ("Back", "返回"),
        K::Resolve => ("Resolve", "标记解决"),
        K::Reopen => ("Reopen", "重新打开"),
        K::Reply => ("Reply", "回复"),
        K::InternalNote => ("internal note", "内部备注"),
        K::NoteToggle => ("Internal note", "内部备注"),
        K::NotePlaceholder => (
            "Write an internal note (the visitor won't see it)…",
            "写一条内部备注（访客看不到）…",
        ),
        K::ReplyPlaceholder => ("Write a reply…", "输入回复…"),
        K::VisitorPanel => ("Visitor", "访客信息"),
        K::Name => ("Name", "姓名"),
        K::CurrentPage => ("Current page", "当前页面"),
        K::Referrer => ("Referrer", "来源"),
        K::Browser => ("Browser", "浏览器"),
        K::Os => ("OS", "操作系统"),
        K::Ip => ("IP", "IP"),
        K::Locale => ("Language", "语言"),
        K::LocalTime => ("Local time", "当地时间"),
        K::Unknown => ("—", "—"),
        K::Details => ("Details", "详情"),
        K::JustNow => ("just now", "刚刚"),
        K::MinutesAgo => ("{n} min ago", "{n} 分钟前"),
        K::HoursAgo => ("{n} h ago", "{n} 小时前"),
        K::DaysAgo => ("{n} d ago", "{n} 天前"),
        K::NoMessagesYet => ("No messages yet", "暂无消息"),
        K::Loading => ("Loading…", "加载中…"),
        K::StatusOpen => ("Open", "进行中"),
        K::StatusPending => ("Pending", "待处理"),
        K::StatusResolved => ("Resolved", "已解决"),
        K::StatusSnoozed => ("Snoozed", "已暂缓"),
        K::You => ("You", "我"),
        K::Bot => ("Bot", "机器人"),
        K::System => ("System", "系统"),
        K::Handoff => ("Talk to a person", "转人工"),
        K::Suggestions => ("Suggestions", "推荐问题"),
        K::ContactTitle => ("Leave your contact details", "留下您的联系方式"),
        K::ContactSub => (
            "An email or a phone number is enough.",
            "填写邮箱或电话其中一项即可。",
        ),
        K::Phone => ("Phone", "电话"),
        K::ContactNote => ("Message (optional)", "留言（可选）"),
        K::ContactSubmit => ("Send details", "提交"),
        K::ContactNeedOne => (
            "Please give an email or a phone number.",
            "请填写邮箱或电话。",
        ),
        K::ContactThanks => (
            "Thank you! We'll get back to you soon.",
            "谢谢！我们会尽快与您联系。",
        ),
        K::BotAnswering => ("Bot answering", "机器人接待中"),
        K::BotAdmin => ("Bot", "机器人"),
        K::BotAdminTitle => ("Bot settings", "机器人设置"),
        K::AdminsOnly => (
            "Only admins can change the bot.",
            "只有管理员可以修改机器人设置。",
        ),
        K::Site => ("Site", "站点"),
        K::NoSites => ("No sites yet.", "暂无站点。"),
        K::BotEnabled => ("Bot answers first", "机器人先接待"),
        K::BotName => ("Bot name", "机器人名称"),
        K::Engine => ("Engine", "引擎"),
        K::EngineRetrieval => ("Built-in Q&A", "内置问答"),
        K::EngineWebhook => ("Webhook", "Webhook"),
        K::EngineLlm => ("LLM", "大模型"),
        K::Threshold => ("Confidence threshold", "置信度阈值"),
        K::ThresholdHelp => (
            "Answers below this confidence count as not understood.",
            "低于此置信度的回答视为未理解。",
        ),
        K::Welcome => ("Welcome message", "欢迎语"),
        K::HandoffWords => ("Hand-over words (one per line)", "转人工关键词（每行一个）"),
        K::Packs => ("Built-in Q&A packs", "内置问答包"),
        K::PackPairs => ("{n} Q&A pairs", "{n} 条问答"),
        K::WebhookUrl => ("Webhook URL", "Webhook 地址"),
        K::WebhookSecret => ("Signing secret", "签名密钥"),
        K::LlmBaseUrl => ("API base URL", "API 地址"),
        K::LlmModel => ("Model", "模型"),
        K::LlmApiKey => ("API key", "API 密钥"),
        K::SecretSet => (
            "•••• set (leave empty to keep)",
            "•••• 已设置（留空则不修改）",
        ),
        K::Save => ("Save", "保存"),
        K::Saving => ("Saving…", "保存中…"),
        K::Saved => ("Saved", "已保存"),
        K::Cancel => ("Cancel", "取消"),
        K::Edit => ("Edit", "编辑"),
        K::Delete => ("Delete", "删除"),
        K::ConfirmDelete => ("Really delete?", "确定删除？"),
        K::TryIt => ("Try it", "试一试"),
        K::TryPlaceholder => (
            "Type a question a visitor might ask…",
            "输入访客可能提出的问题…",
        ),
        K::Intent => ("Intent", "意图"),
        K::Confidence => ("Confidence", "置信度"),
        K::Entities => ("Entities", "实体"),
        K::Answer => ("Answer", "回答"),
        K::HandsOver => ("Hands over to a person", "转人工"),
        K::Yes => ("Yes", "是"),
        K::No => ("No", "否"),
        K::NoneFound => ("(none)", "（无）"),
        K::QaPairs => ("Q&A pairs", "问答对"),
        K::QaSearch => ("Search questions and answers…", "搜索问题和回答…"),
        K::QaAdd => ("Add Q&A pair", "添加问答对"),
        K::QaEdit => ("Edit Q&A pair", "编辑问答对"),
        K::QaQuestions => ("Questions (one per line)", "问题（每行一个）"),
        K::QaQuickReplies => (
            "Quick replies (one per line, up to three, optional)",
            "快捷回复（每行一个，最多三个，可选）",
        ),
        K::QaHandoff => ("Hand over to a person after answering", "回答后转人工"),
        K::QaDecline => (
            "Not answered here (a decline example)",
            "不在服务范围（拒答示例）",
        ),
        K::QaDeclineHelp => (
            "The bot does not answer questions like these and hands the visitor to a person at once. List what this site does not answer, worded as visitors would ask it.",
            "遇到与这些问题相近的消息，机器人不作回答，直接转人工。请按访客的问法列出本站不回答的问题。",
        ),
        K::QaPlaceholders => (
            "{order_no}, {phone}, {email}, {date} and {amount} in the answer are replaced with what the visitor's message says.",
            "回答中的 {order_no}、{phone}、{email}、{date}、{amount} 会自动替换为访客消息中的相应内容。",
        ),
        K::Declines => ("Not answered", "拒答"),
        K::QaNeedQuestion => ("Give at least one question.", "请至少填写一个问题。"),
        K::QaNeedQuestionAndAnswer => (
            "Give at least one question and an answer.",
            "请至少填写一个问题和回答。",
        ),
        K::QaTotal => ("{n} pairs", "共 {n} 条"),
        K::NoQa => ("No Q&A pairs found.", "没有找到问答对。"),
        K::FromPack => ("Pack", "问答包"),
        K::OwnPair => ("This site", "本站"),
        K::MoreQuestions => ("+{n} more", "另有 {n} 个问法"),
        K::Previous => ("Previous", "上一页"),
        K::Next => ("Next", "下一页"),
        K::Import => ("Import", "导入"),
        K::ImportHelp => (
            "A UTF-8 CSV file (question,answer[,id][,lang] with a header row) or a pack JSON file.",
            "UTF-8 编码的 CSV 文件（question,answer[,id][,lang]，带表头）或问答包 JSON 文件。",
        ),
        K::ImportNotUtf8 => (
            "Nothing was imported: the file is not UTF-8 text. Save it as UTF-8 (in Excel: \"CSV UTF-8\") and import it again.",
            "未导入：文件不是 UTF-8 编码。请另存为 UTF-8（Excel 中选择“CSV UTF-8”）后重新导入。",
        ),
        K::Imported => ("Imported {n} Q&A pairs.", "已导入 {n} 条问答。"),
        K::Importing => ("Importing…", "导入中…"),
        K::Unanswered => ("Unanswered questions", "未回答的问题"),
        K::NoUnanswered => ("Nothing unanswered.", "暂无未回答的问题。"),
        K::CreateQa => ("Create Q&A pair", "创建问答对"),
        K::Dismiss => ("Dismiss", "忽略"),
        K::Language => ("Language", "语言"),
        K::PacksAll => (
            "None checked: the bot answers from every pack.",
            "都不勾选时，机器人使用全部问答包。",
        ),
        K::SiteSettings => ("Settings", "设置"),
        K::Refresh => ("Refresh", "刷新"),
    }
}

/// English strings of a count that read differently for one; Chinese has no plural.
fn singular(k: K) -> Option<&'static str> {
    match k {
        K::QaTotal => Some("1 pair"),
        K::PackPairs => Some("1 Q&A pair"),
        K::Imported => Some("Imported 1 Q&A pair."),
        _ => None,
    }
}

pub fn text(lang: Lang, k: K) -> &'static str {
    let (en, zh) = pair(k);
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// The current language, shared by context. Reading a string through it is reactive.
#[derive(Debug, Clone, Copy)]
pub struct I18n(pub RwSignal<Lang>);

impl I18n {
    /// Provides the language signal (English until [`I18n::detect`] runs).
    pub fn provide() -> Self {
        let i = I18n(RwSignal::new(Lang::En));
        provide_context(i);
        i
    }

    pub fn get() -> Self {
        use_context::<I18n>().unwrap_or_else(|| I18n(RwSignal::new(Lang::En)))
    }

    pub fn lang(self) -> Lang {
        self.0.get()
    }

    /// The string for `k` in the current language (tracks the language signal).
    pub fn t(self, k: K) -> &'static str {
        text(self.0.get(), k)
    }

    /// The string for `k` with `{n}` replaced (in the singular for one, where English has one).
    pub fn tn(self, k: K, n: impl std::fmt::Display) -> String {
        let n = n.to_string();
        match singular(k) {
            Some(one) if n == "1" && self.lang() == Lang::En => one.to_owned(),
            _ => self.t(k).replace("{n}", &n),
        }
    }

    /// Switches to the browser's language and marks `<html lang>` accordingly. Browser only.
    pub fn detect(self) {
        #[cfg(feature = "hydrate")]
        {
            let window = leptos::prelude::window();
            let tag = window.navigator().language().unwrap_or_default();
            let lang = Lang::from_tag(&tag);
            self.0.set(lang);
            if let Some(root) = window.document().and_then(|d| d.document_element()) {
                let _ = root.set_attribute("lang", lang.html_tag());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_chinese_for_any_zh_tag() {
        assert_eq!(Lang::from_tag("zh"), Lang::Zh);
        assert_eq!(Lang::from_tag("zh-TW"), Lang::Zh);
        assert_eq!(Lang::from_tag("ZH-cn"), Lang::Zh);
        assert_eq!(Lang::from_tag("en-US"), Lang::En);
        assert_eq!(Lang::from_tag(""), Lang::En);
    }

    #[test]
    fn numbers_are_filled_in() {
        assert_eq!(
            text(Lang::Zh, K::MinutesAgo).replace("{n}", "3"),
            "3 分钟前"
        );
    }
}
