//! Importing a site's QA pairs (CSV or a pack language file) through the real server: a file
//! with a mistake stores nothing and says which row is wrong; good files keep what they say.

mod common;

use common::*;
use kefu_server::storage::{SiteQa, StorageError};
use serde_json::{Value, json};

/// Posts an import; the status and the JSON answer.
async fn import(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<String>,
) -> (u16, Value) {
    let mut req = app.agent_post(&format!("/api/v1/sites/{}/qa/import", app.site_id));
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let r = req.body(body.into()).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the answer ({status}) is not JSON: {e}: {text:?}"));
    (status, v)
}

async fn csv(app: &TestApp, body: &str) -> (u16, Value) {
    import(app, Some("text/csv"), body).await
}

/// The error message of a `400`, after checking the status and the error's shape.
fn refused(answer: (u16, Value)) -> String {
    let (status, v) = answer;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid", "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

/// The site's own pairs as the admin's list shows them (they come before the packs' pairs),
/// sorted by their first question.
async fn own_pairs(app: &TestApp) -> Vec<Value> {
    let mut own = Vec::new();
    loop {
        let page = app
            .agent_json(&format!(
                "/api/v1/sites/{}/qa?limit=500&offset={}",
                app.site_id,
                own.len()
            ))
            .await;
        let items = page["qa"].as_array().unwrap();
        let before = own.len();
        own.extend(items.iter().filter(|p| p["source"] == "site").cloned());
        if own.len() - before < items.len() || items.is_empty() {
            break;
        }
    }
    own.sort_by_key(|p| p["questions"][0].as_str().unwrap().to_owned());
    own
}

/// An existing pair, so that "unchanged" is not just "empty".
async fn seed(app: &TestApp) -> Vec<Value> {
    let (status, _) = app
        .add_qa(
            json!({"lang": "en", "questions": ["Are you open on Sunday?"],
                       "answer": "Yes, 10:00 to 16:00."}),
        )
        .await;
    assert_eq!(status, 201);
    let own = own_pairs(app).await;
    assert_eq!(own.len(), 1);
    own
}

fn questions(pair: &Value) -> Vec<&str> {
    pair["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect()
}

fn pack_file(pack: &str, lang: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../corpus/{pack}/{lang}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn a_file_with_a_bad_row_stores_nothing_and_names_the_row() {
    let app = spawn_app().await;
    let before = seed(&app).await;

    // Lines 2 and 3 are good; line 4's answer is longer than a message may be.
    let long = "x".repeat(kefu::validate::MAX_BODY_CHARS + 1);
    let e = refused(
        csv(
            &app,
            &format!(
                "question,answer\nDo you ship to Macau?,Yes.\nDo you gift wrap?,No.\nWhy?,{long}\n"
            ),
        )
        .await,
    );
    assert!(e.contains("line 4") && e.contains("answer"), "{e}");
    assert!(!e.contains("line 2") && !e.contains("line 3"), "{e}");
    assert_eq!(own_pairs(&app).await, before);

    // A row without a question, in a file whose other rows are good.
    let e = refused(csv(&app, "question,answer\nHello?,Hi.\n,An answer alone\n").await);
    assert!(
        e.contains("line 3") && e.contains("question is empty"),
        "{e}"
    );
    assert_eq!(own_pairs(&app).await, before);

    // A pack file: the pair's index and id, and what is wrong with it.
    let pack = json!({"format": 1, "pack": "shop", "lang": "en", "qa": [
        {"id": "shop.hours", "questions": ["When are you open?"], "answer": "9 to 5."},
        {"id": "shop.empty", "questions": ["  "], "answer": "Nobody asks this."},
        {"id": "shop.silent", "questions": ["Anything?"], "answer": ""},
    ]});
    let e = refused(import(&app, Some("application/json"), pack.to_string()).await);
    assert!(
        e.contains(r#"qa[1] (id "shop.empty")"#) && e.contains("at least one question"),
        "{e}"
    );
    assert!(
        e.contains(r#"qa[2] (id "shop.silent")"#) && e.contains("answer"),
        "{e}"
    );
    assert!(!e.contains("qa[0]"), "{e}");
    assert_eq!(own_pairs(&app).await, before);

    let pack = json!({"format": 1, "lang": "fr", "qa": [
        {"id": "shop.hours", "questions": ["Quand ouvrez-vous ?"], "answer": "De 9 à 17 h."},
    ]});
    let e = refused(import(&app, Some("application/json"), pack.to_string()).await);
    assert!(e.contains("en or zh-CN") && e.contains("fr"), "{e}");
    assert_eq!(own_pairs(&app).await, before);
}

#[tokio::test]
async fn a_storage_failure_midway_stores_nothing() {
    let app = spawn_app().await;
    let before = seed(&app).await;
    // The database refuses the third pair of the file, after the first two were written.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        app.dir.path().join("kefu.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON qa_pairs WHEN NEW.answer = 'Boom.' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&db)
    .await
    .unwrap();

    let (status, v) = csv(
        &app,
        "question,answer\nOne?,First.\nTwo?,Second.\nThree?,Boom.\nFour?,Fourth.\n",
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{v}"
    );
    assert_eq!(own_pairs(&app).await, before);

    // The same through the storage: a pair it cannot save undoes the ones before it.
    let pair = |id: &str, q: &str| SiteQa {
        id: id.into(),
        lang: "en".into(),
        questions: vec![q.into()],
        answer: "Fine.".into(),
        quick_replies: Vec::new(),
        handoff: false,
        decline: false,
        entities: Vec::new(),
    };
    let r = app
        .storage
        .qa_save_all(
            &app.site_id,
            vec![pair("", "Five?"), pair("no-such-pair", "Six?")],
        )
        .await;
    assert!(matches!(r, Err(StorageError::NotFound)), "{r:?}");
    assert_eq!(own_pairs(&app).await, before);

    sqlx::query("DROP TRIGGER refuse_boom")
        .execute(&db)
        .await
        .unwrap();
    let (status, v) = csv(&app, "question,answer\nOne?,First.\nThree?,Boom.\n").await;
    assert_eq!((status, &v["imported"]), (200, &json!(2)), "{v}");
    assert_eq!(own_pairs(&app).await.len(), 3);
}

#[tokio::test]
async fn csv_quotes_follow_rfc_4180_and_broken_ones_name_the_line() {
    let app = spawn_app().await;
    let before = seed(&app).await;

    // A quote inside a field that does not start with one.
    let e = refused(csv(&app, "question,answer\nDo you sell 5\" phones?,Yes\n").await);
    assert!(e.contains("line 2") && e.contains("quote"), "{e}");
    // A quote never closed: it must not swallow the rest of the file.
    let e = refused(
        csv(
            &app,
            "question,answer\nHi?,Hello.\nOpen?,\"Yes, from 9\nClosed?,No.\nLate?,Till 10.\n",
        )
        .await,
    );
    assert!(e.contains("line 3") && e.contains("not closed"), "{e}");
    // More fields than the header: the answer's comma was not quoted.
    let e = refused(csv(&app, "question,answer\nHow to pay?,Card, cash or WeChat\n").await);
    assert!(
        e.contains("line 2") && e.contains("3 fields") && e.contains("2 columns"),
        "{e}"
    );
    // Text after a closing quote.
    let e = refused(csv(&app, "question,answer\nQ?,\"Yes\" and no\n").await);
    assert!(e.contains("line 2") && e.contains("closing quote"), "{e}");
    // Lines are lines of the file: a quoted line break counts.
    let e = refused(
        csv(
            &app,
            "question,answer\nWhere?,\"Shop 1,\nMain Street\"\nWho?,Bob \"the\" clerk\n",
        )
        .await,
    );
    assert!(e.contains("line 4"), "{e}");
    assert_eq!(own_pairs(&app).await, before);

    // A good file: BOM, CRLF, quoted commas and line breaks, doubled quotes.
    let (status, v) = csv(
        &app,
        "\u{feff}question,answer\r\n\
         \"Do you sell 5\"\" phones?\",\"Yes, the \"\"Mini\"\".\"\r\n\
         How to pay?,\"Card, cash\r\nor WeChat.\"\r\n\
         \"Where is my order, please?\",Check Orders in your account.\r\n\
         Track my parcel,Check Orders in your account.",
    )
    .await;
    assert_eq!((status, &v["imported"]), (200, &json!(3)), "{v}");
    let own = own_pairs(&app).await;
    assert_eq!(own.len(), 4);
    let by_question = |q: &str| {
        own.iter()
            .find(|p| questions(p).contains(&q))
            .unwrap_or_else(|| panic!("no pair asks {q:?}: {own:?}"))
    };
    assert_eq!(
        by_question("Do you sell 5\" phones?")["answer"],
        "Yes, the \"Mini\"."
    );
    assert_eq!(
        by_question("How to pay?")["answer"],
        "Card, cash\nor WeChat."
    );
    assert_eq!(
        questions(by_question("Track my parcel")),
        ["Where is my order, please?", "Track my parcel"]
    );
}

#[tokio::test]
async fn rows_of_one_id_add_questions_and_must_agree() {
    let app = spawn_app().await;
    let before = seed(&app).await;

    // Another answer under the same id: both lines are named.
    let e = refused(
        csv(
            &app,
            "id,question,answer\npay,How to pay?,Card only.\nship,Ship?,Yes.\npay,Payment?,Cash only.\n",
        )
        .await,
    );
    assert!(
        e.contains("line 4") && e.contains("line 2") && e.contains("answer"),
        "{e}"
    );
    // Another language under the same id.
    let e = refused(
        csv(
            &app,
            "id,question,answer,lang\npay,How to pay?,Card.,en\npay,怎么付款,Card.,zh-CN\n",
        )
        .await,
    );
    assert!(
        e.contains("line 3") && e.contains("line 2") && e.contains("zh-CN"),
        "{e}"
    );
    assert_eq!(own_pairs(&app).await, before);

    // Rows that agree (or leave the answer and lang to the id's other rows) add questions.
    let (status, v) = csv(
        &app,
        "id,question,answer,lang\n\
         pay,How to pay?,Card or cash.,en\n\
         pay,Payment methods?,,\n\
         tui,怎么退货,7天内可退。,zh-CN\n\
         pay,Can I pay cash?,Card or cash.,en\n",
    )
    .await;
    assert_eq!((status, &v["imported"]), (200, &json!(2)), "{v}");
    let own = own_pairs(&app).await;
    assert_eq!(own.len(), 3);
    let pay = own.iter().find(|p| p["answer"] == "Card or cash.").unwrap();
    assert_eq!(
        questions(pay),
        ["How to pay?", "Payment methods?", "Can I pay cash?"]
    );
    assert_eq!(pay["lang"], "en");
    let tui = own.iter().find(|p| p["answer"] == "7天内可退。").unwrap();
    assert_eq!(tui["lang"], "zh-CN");
}

#[tokio::test]
async fn a_pack_file_with_a_bom_imports_with_or_without_its_content_type() {
    let app = spawn_app().await;
    let pack = json!({"format": 1, "pack": "shop", "lang": "zh-CN", "qa": [
        {"id": "shop.hours", "questions": ["几点开门"], "answer": "早上9点。"},
    ]});
    let file = format!("\u{feff}{pack}");
    let (status, v) = import(&app, Some("application/json"), file.clone()).await;
    assert_eq!((status, &v["imported"]), (200, &json!(1)), "{v}");
    let (status, v) = import(&app, None, file).await;
    assert_eq!((status, &v["imported"]), (200, &json!(1)), "{v}");
    let own = own_pairs(&app).await;
    assert_eq!(own.len(), 2);
    assert!(
        own.iter()
            .all(|p| p["lang"] == "zh-CN" && p["answer"] == "早上9点。")
    );
}

#[tokio::test]
async fn a_shipped_pack_file_imports_and_a_too_large_one_is_refused_with_the_limit() {
    let app = spawn_app().await;
    let file = pack_file("ecommerce", "en");
    assert!(file.len() > 1_000_000, "{}", file.len());
    let pairs = serde_json::from_str::<Value>(&file).unwrap()["qa"]
        .as_array()
        .unwrap()
        .len();
    let (status, v) = import(&app, Some("application/json"), file).await;
    assert_eq!((status, &v["imported"]), (200, &json!(pairs)), "{v}");
    assert_eq!(own_pairs(&app).await.len(), pairs);

    // Past the import limit (8 MiB by default): the API's error, which says the limit.
    let limit = kefu_server::config::Settings::default()
        .limits
        .import_max_bytes;
    assert_eq!(limit, 8 * 1024 * 1024);
    let (status, v) = import(&app, Some("text/csv"), "x".repeat(limit + 1)).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    let e = v["error"]["message"].as_str().unwrap();
    assert!(
        e.contains("8 MiB") && e.contains("limits.import_max_bytes"),
        "{e}"
    );
    assert_eq!(own_pairs(&app).await.len(), pairs);

    // Every other route keeps the API's own limit.
    let r = app
        .agent_post(&format!("/api/v1/sites/{}/qa", app.site_id))
        .json(&json!({"lang": "en", "questions": ["x".repeat(100 * 1024)], "answer": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn the_import_limit_is_a_setting() {
    let app = spawn_app_with(|s| s.limits.import_max_bytes = 100 * 1024).await;
    let (status, v) = import(&app, Some("application/json"), pack_file("general", "en")).await;
    assert_eq!(status, 413, "{v}");
    let e = v["error"]["message"].as_str().unwrap();
    assert!(e.contains("100 KiB"), "{e}");
    assert_eq!(own_pairs(&app).await.len(), 0);
}

#[tokio::test]
async fn a_pack_file_keeps_hand_over_quick_replies_decline_examples_and_entities() {
    let app = spawn_app().await;
    let file = pack_file("general", "en");
    let pack: Value = serde_json::from_str(&file).unwrap();
    let qa = pack["qa"].as_array().unwrap();
    assert!(qa.iter().any(|p| p["decline"] == true));

    let (status, v) = import(&app, Some("application/json"), file.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["imported"], qa.len(), "{v}");

    let own = own_pairs(&app).await;
    assert_eq!(own.len(), qa.len());
    for a in qa {
        let stored = own
            .iter()
            .find(|p| p["questions"] == a["questions"])
            .unwrap_or_else(|| panic!("{} was not imported", a["id"]));
        assert_eq!(stored["answer"], a["answer"]);
        assert_eq!(stored["handoff"], a["handoff"].as_bool().unwrap_or(false));
        assert_eq!(
            stored["decline"].as_bool().unwrap_or(false),
            a["decline"].as_bool().unwrap_or(false)
        );
        assert_eq!(
            stored["quick_replies"],
            a.get("quick_replies").cloned().unwrap_or(json!([]))
        );
    }
    assert!(own.iter().any(|p| p["handoff"] == true));
    assert!(own.iter().any(|p| p["decline"] == true));
    assert!(own.iter().any(|p| p["quick_replies"] != json!([])));

    // Entities are kept too (the general pack lists none).
    let app = spawn_app().await;
    let file = pack_file("ecommerce", "en");
    let pack: Value = serde_json::from_str(&file).unwrap();
    let listed = pack["qa"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["entities"].as_array().is_some_and(|e| !e.is_empty()))
        .expect("an ecommerce pair lists entities")
        .clone();
    let (status, v) = import(&app, Some("application/json"), file).await;
    assert_eq!(status, 200, "{v}");
    let own = own_pairs(&app).await;
    let stored = own
        .iter()
        .find(|p| p["questions"] == listed["questions"])
        .unwrap();
    assert_eq!(stored["entities"], listed["entities"]);
}

#[tokio::test]
async fn a_sites_own_decline_example_keeps_the_bot_from_answering_what_it_is_like() {
    let app = spawn_app().await;
    // A tea shop: the packs answer this with something about sellers, confidently.
    let phones = "do you sell iphones";
    let tried = app.bot_try(phones).await;
    assert_ne!(tried["intent"], "unknown", "{tried}");
    assert_eq!(
        app.bot_try("do you gift wrap").await["intent"],
        "ecommerce.gift-wrap"
    );

    // What the shop does not answer, worded as visitors ask it.
    let (status, v) = app
        .add_qa(json!({"lang": "en", "decline": true,
               "questions": [phones, "are there any smartphones for sale"]}))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["qa"]["decline"], true, "{v}");
    let tried = app.bot_try(phones).await;
    assert_eq!(tried["intent"], "unknown", "{tried}");
    assert_eq!(tried["declined"], true, "{tried}");
    assert_eq!(tried["handoff"], true, "{tried}");
    // What it does answer still is.
    assert_eq!(
        app.bot_try("do you gift wrap").await["intent"],
        "ecommerce.gift-wrap"
    );
    let own = own_pairs(&app).await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["decline"], true, "{own:?}");

    // A decline example does not also hand over after answering: it answers nothing.
    let message = refused(
        app.add_qa(
            json!({"lang": "en", "decline": true, "handoff": true, "answer": "",
                   "questions": ["do you ship to the moon"]}),
        )
        .await,
    );
    assert!(
        message.contains("decline") && message.contains("handoff"),
        "{message}"
    );
}

#[tokio::test]
async fn an_answer_with_a_placeholder_fills_it_from_a_bare_number() {
    let app = spawn_app().await;
    let (status, v) = app.add_qa(json!({"lang": "en", "answer": "Order {order_no} leaves our tea room within two days.",
               "questions": ["when does my tea order leave the tea room", "tea room dispatch time"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // A bare number is an order number only for answers that use one.
    let tried = app.bot_try("when does 20261129 leave the tea room").await;
    assert_eq!(tried["entities"]["order_no"], "20261129", "{tried}");
    assert_eq!(
        tried["answer"], "Order 20261129 leaves our tea room within two days.",
        "{tried}"
    );

    // Listed kinds are checked.
    let message = refused(
        app.add_qa(
            json!({"lang": "en", "answer": "Fine.", "entities": ["order_no", "shoe_size"],
                   "questions": ["what size"]}),
        )
        .await,
    );
    assert!(
        message.contains("shoe_size") && message.contains("order_no, phone"),
        "{message}"
    );
}

#[tokio::test]
async fn more_quick_replies_than_the_widget_shows_are_refused_not_cut() {
    let app = spawn_app().await;
    let message = refused(
        app.add_qa(
            json!({"lang": "en", "answer": "Which one?", "questions": ["which tea"],
                   "quick_replies": ["Green", "Black", "Oolong", "White"]}),
        )
        .await,
    );
    assert!(
        message.contains("at most 3 quick replies, got 4"),
        "{message}"
    );
    assert!(own_pairs(&app).await.is_empty());
}

#[tokio::test]
async fn the_bot_answers_from_an_import_at_once() {
    let app = spawn_app().await;
    let try_it = || app.bot_try("do you sell jasmine pearls");
    // The bot is built (and kept) before the import.
    let tried = try_it().await;
    assert_ne!(tried["answer"], "Yes: Jasmine Pearls, 50 g or 100 g.");

    let (status, v) = csv(
        &app,
        "question,answer\nDo you sell jasmine pearls?,\"Yes: Jasmine Pearls, 50 g or 100 g.\"\nAny jasmine pearl tea?,\"Yes: Jasmine Pearls, 50 g or 100 g.\"\n",
    )
    .await;
    assert_eq!((status, &v["imported"]), (200, &json!(1)), "{v}");
    let tried = try_it().await;
    assert_eq!(
        tried["answer"], "Yes: Jasmine Pearls, 50 g or 100 g.",
        "{tried}"
    );
}

#[tokio::test]
async fn a_sites_own_pair_answers_its_questions_reworded() {
    let app = spawn_app().await;
    let (en, zh) = (
        "Yes: Jasmine Pearls, 50 g or 100 g.",
        "有的：茉莉龙珠，50 克或 100 克。",
    );
    for (lang, answer, questions) in [
        (
            "en",
            en,
            json!(["Do you sell jasmine pearls?", "any jasmine pearl tea"]),
        ),
        ("zh-CN", zh, json!(["你们卖茉莉龙珠吗", "有茉莉龙珠茶吗"])),
    ] {
        let (status, v) = app
            .add_qa(json!({"lang": lang, "answer": answer, "questions": questions}))
            .await;
        assert_eq!(status, 201, "{v}");
    }
    // Visitors add a word or two, or word it their own way: the pair is weighed against the
    // packs' questions as if it were one of them, not against its own two alone (where every
    // other word looked rare, and a message with one of them scored far below the pair).
    for (message, answer) in [
        ("do you sell jasmine pearls in bulk", en),
        ("is jasmine pearl tea available", en),
        ("do you have jasmine pearls in stock", en),
        ("请问茉莉龙珠有货吗", zh),
        ("你们有没有茉莉龙珠", zh),
    ] {
        let tried = app.bot_try(message).await;
        assert_eq!(tried["answer"], answer, "{message}: {tried}");
    }
    // The packs still answer their own topics.
    assert_eq!(
        app.bot_try("how long does delivery take").await["intent"],
        "ecommerce.delivery-time"
    );
    assert_eq!(
        app.bot_try("do you gift wrap").await["intent"],
        "ecommerce.gift-wrap"
    );
}
