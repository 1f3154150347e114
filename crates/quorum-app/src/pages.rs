//! Reading a whole project from the store, one page (one round trip) at a time.

use quorum_store::{BattleVote, ExportRow, Project, Store, StoredItem};

use crate::export::EXPORT_PAGE;
use crate::{App, AppError};

impl<S: Store> App<S> {
    /// Every project, or (with `member`) every project that user is a member of, in id order.
    pub(crate) async fn all_projects(&self, member: Option<i64>) -> Result<Vec<Project>, AppError> {
        let mut projects = Vec::new();
        loop {
            let after = projects.last().map_or(0, |p: &Project| p.id);
            let page = self.store().list_projects(member, after, 500).await?;
            let done = page.len() < 500;
            projects.extend(page);
            if done {
                return Ok(projects);
            }
        }
    }

    /// Every item of a project.
    pub(crate) async fn all_items(&self, project_id: i64) -> Result<Vec<StoredItem>, AppError> {
        let mut items = Vec::new();
        loop {
            let after = items.last().map_or(0, |i: &StoredItem| i.id);
            let page = self.store().items(project_id, after, EXPORT_PAGE).await?;
            let done = (page.len() as i64) < EXPORT_PAGE;
            items.extend(page);
            if done {
                return Ok(items);
            }
        }
    }

    /// Calls `visit` on every response of a project, oldest first, holding one page at a time.
    pub(crate) async fn for_each_response(
        &self,
        project_id: i64,
        mut visit: impl FnMut(ExportRow),
    ) -> Result<(), AppError> {
        let mut after = 0;
        loop {
            let page = self
                .store()
                .export_responses(project_id, after, EXPORT_PAGE)
                .await?;
            let done = (page.len() as i64) < EXPORT_PAGE;
            for row in page {
                after = row.response_id;
                visit(row);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Every response of a project, oldest first.
    pub(crate) async fn all_responses(&self, project_id: i64) -> Result<Vec<ExportRow>, AppError> {
        let mut rows = Vec::new();
        self.for_each_response(project_id, |row| rows.push(row))
            .await?;
        Ok(rows)
    }

    /// Every response to a battle item of a project, oldest first.
    pub(crate) async fn all_battle_votes(
        &self,
        project_id: i64,
    ) -> Result<Vec<BattleVote>, AppError> {
        let mut votes: Vec<BattleVote> = Vec::new();
        loop {
            let after = votes.last().map_or(0, |v| v.response_id);
            let page = self
                .store()
                .battle_votes(project_id, after, EXPORT_PAGE)
                .await?;
            let done = (page.len() as i64) < EXPORT_PAGE;
            votes.extend(page);
            if done {
                return Ok(votes);
            }
        }
    }
}
