//! A service over a temporary store, two articles and one intent (转人工), for the unit
//! tests of the service's files. Real store, real engine: only the data is small.

use std::sync::Arc;

use super::{Brain, Service, Sources};
use crate::config::Config;
use crate::handoff::{Agent, AgentStatus};
use crate::store::SledStore;

pub const RETURN_FEE: &str = "+++\nid = \"return-shipping-fee\"\ntitle = \"退货运费谁出？\"\nsimilar = [\"退货的运费谁来出\", \"退货邮费谁承担\"]\n+++\n质量问题由商家承担运费。\n";
pub const INVOICE: &str = "+++\nid = \"invoice\"\ntitle = \"怎么开发票？\"\nsimilar = [\"发票怎么开\", \"可以开发票吗\"]\n+++\n在订单详情页申请开票。\n";
pub const HUMAN: &str = "name = \"human\"\npriority = 100\nkeywords = [\"转人工\"]\n[action]\nkind = \"handoff\"\nreason = \"requested\"\nskill = \"general\"\ntext = \"正在为您转接人工客服。\"\n";

pub struct Fixture {
    pub service: Arc<Service>,
    _dir: tempfile::TempDir,
}

/// A service with `configure` applied to a test config (cheap password hashing).
pub async fn service(configure: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = dir.path().join("knowledge");
    let intents = dir.path().join("intents");
    std::fs::create_dir_all(&knowledge).unwrap();
    std::fs::create_dir_all(&intents).unwrap();
    std::fs::write(knowledge.join("return-fee.md"), RETURN_FEE).unwrap();
    std::fs::write(knowledge.join("invoice.md"), INVOICE).unwrap();
    std::fs::write(intents.join("human.toml"), HUMAN).unwrap();
    let mut config = Config { password_rounds: 1_000, knowledge, intents, data: dir.path().join("data"), ..Config::default() };
    configure(&mut config);
    let sources = Sources {
        knowledge: config.knowledge.clone(),
        intents: config.intents.clone(),
        data: config.data.join("knowledge"),
        answer_threshold: config.answer_threshold,
        clarify_threshold: config.clarify_threshold,
        semantic: None,
    };
    let brain = {
        let sources = sources.clone();
        tokio::task::spawn_blocking(move || Brain::load(&sources)).await.unwrap().unwrap()
    };
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let service = Service::new(config.service(), Arc::new(store), brain, sources, crate::auth::token_hash("admin"));
    Fixture { service: Arc::new(service), _dir: dir }
}

impl Fixture {
    /// A new visitor's conversation: (id, token).
    pub async fn visitor(&self) -> (String, String) {
        let s = self.service.start(Default::default()).await.unwrap();
        (s.id, s.token)
    }

    /// An agent account, online when `online`.
    pub async fn agent(&self, id: &str, online: bool) -> Agent {
        self.service.put_agent(id, id, "password-123", vec![], 2).await.unwrap();
        let agent = self.service.store().agent(id).await.unwrap().unwrap();
        if online {
            self.service.set_status(&agent, AgentStatus::Online).await.unwrap();
        }
        self.service.store().agent(id).await.unwrap().unwrap()
    }
}

/// The code of an error the call must return.
pub fn code<T>(result: super::Result<T>) -> crate::codes::Code {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}
