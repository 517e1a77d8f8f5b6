//! Run plans: which sink files each batch run takes, written down before it takes them.
//!
//! Runs are numbered 1, 2, …. Before run N reads a file it writes its plan,
//! `<lake>/batch/<id>/runs/<N, 10 digits>.json`, with a create-only put, so of two runs racing
//! for the same number one gets [`Error::Busy`]. A plan says, per topic and partition, the start
//! offset of the last sink file that runs 1..=N cover together ([`Plan::through`]); the sink
//! writes each partition's files in offset order and never rewrites one, so those offsets say
//! exactly which files each run took. Plans are never changed or deleted (a year of daily runs
//! is a few hundred small objects).
//!
//! What they are for:
//! - **First received.** A file belongs to the run that first covered it (its *generation*,
//!   [`Plans::generation`]). The batch tables keep the first record of each `ind` in the order
//!   (generation, partition, offset): a later run only adds `ind`s the tables lack, and a
//!   `--full-refresh` over the same files, reading the plans, keeps the same rows. Kafka has no
//!   order across partitions; the runs give one that does not change as files arrive.
//! - **Completing a run.** A plan is written before its tables are committed and each table's
//!   commit carries the run number ([`super::tables`]): a run that was killed leaves a plan its
//!   tables have not reached, and the next run carries out that same plan first.
//!
//! Fed by the sink's file listing ([`super::read::list`]); read by [`super`] (which plan to carry
//! out) and [`super::read`] (which files, in which order).

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::Error;
use super::read::SinkFile;
use crate::lake::Lake;

/// One run's plan, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The run's number, from 1.
    pub run: u64,
    /// A `--full-refresh`: the run rebuilds every table from every file the plans cover.
    pub full_refresh: bool,
    /// When the plan was written, RFC 3339 in UTC.
    pub created_at: String,
    /// Who wrote it: `host pid`, for the message a racing run gets.
    pub by: String,
    /// Topic → partition → start offset of the last file runs 1..=`run` cover.
    pub through: BTreeMap<String, BTreeMap<u32, u64>>,
}

impl Plan {
    /// Whether `file` is covered by this plan (by this run or an earlier one).
    pub fn covers(&self, file: &SinkFile) -> bool {
        self.through.get(&file.topic).and_then(|p| p.get(&file.partition)).is_some_and(|&last| file.start <= last)
    }

    /// The plan after `previous` that covers every file of `listed` too; `None` when `listed`
    /// holds nothing `previous` does not cover (and no full refresh was asked for).
    pub fn next(previous: Option<&Plan>, listed: &[SinkFile], full_refresh: bool) -> Option<Plan> {
        let mut through = previous.map(|p| p.through.clone()).unwrap_or_default();
        let mut new_files = false;
        for file in listed {
            if previous.is_some_and(|p| p.covers(file)) {
                continue;
            }
            new_files = true;
            let last = through.entry(file.topic.clone()).or_default().entry(file.partition).or_insert(file.start);
            *last = (*last).max(file.start);
        }
        if !new_files && !full_refresh {
            return None;
        }
        Some(Plan {
            run: previous.map_or(1, |p| p.run + 1),
            full_refresh,
            created_at: super::now_rfc3339(),
            by: format!("{} {}", hostname(), std::process::id()),
            through,
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Every plan of a pipeline, in run order.
#[derive(Debug, Clone, Default)]
pub struct Plans(Vec<Plan>);

impl Plans {
    /// The newest plan.
    pub fn last(&self) -> Option<&Plan> {
        self.0.last()
    }

    /// The plan of run `run`, if read.
    pub fn get(&self, run: u64) -> Option<&Plan> {
        self.0.iter().find(|p| p.run == run)
    }

    /// The run that first covered `file` (its generation); `None` if no plan covers it.
    pub fn generation(&self, file: &SinkFile) -> Option<u64> {
        self.0.iter().find(|p| p.covers(file)).map(|p| p.run)
    }
}

/// The folder of the plans of pipeline `id`, relative to the lake root.
fn runs_dir(id: &str) -> String {
    format!("batch/{id}/runs")
}

fn plan_key(id: &str, run: u64) -> String {
    format!("{}/{run:010}.json", runs_dir(id))
}

/// Reads every plan of pipeline `id`, in run order (what a full refresh needs: the generation
/// of every file).
pub async fn read_all(lake: &Lake, id: &str) -> Result<Plans, Error> {
    read_last(lake, id, usize::MAX).await
}

/// Reads the newest `n` plans of pipeline `id`, in run order (an incremental run needs two: its
/// own and the one before). Listing the folder is one request per thousand runs.
pub async fn read_last(lake: &Lake, id: &str, n: usize) -> Result<Plans, Error> {
    let dir = lake.path(&runs_dir(id));
    let listed: Vec<_> = lake
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|source| Error::Plans { key: dir.to_string(), source: Box::new(source) })?;
    let mut runs: Vec<u64> =
        listed.iter().filter_map(|meta| meta.location.filename()?.strip_suffix(".json")?.parse().ok()).collect();
    runs.sort_unstable();
    // Runs are written one after another, each only once the one before is committed.
    if let Some((i, &run)) = runs.iter().enumerate().find(|&(i, &run)| run != i as u64 + 1) {
        return Err(Error::Plans {
            key: lake.path(&plan_key(id, run)).to_string(),
            source: format!("plan {} is missing", i + 1).into(),
        });
    }
    let mut plans = Vec::new();
    for run in runs.into_iter().rev().take(n).collect::<Vec<_>>().into_iter().rev() {
        let key = lake.path(&plan_key(id, run));
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Plans { key: key.to_string(), source };
        let bytes =
            lake.store.get(&key).await.map_err(|e| failed(e.into()))?.bytes().await.map_err(|e| failed(e.into()))?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| failed(e.into()))?;
        if plan.run != run {
            return Err(failed(format!("the plan says run {} but is named for run {run}", plan.run).into()));
        }
        plans.push(plan);
    }
    Ok(Plans(plans))
}

/// Writes `plan`, failing with [`Error::Busy`] if that run's plan exists already.
pub async fn create(lake: &Lake, id: &str, plan: &Plan) -> Result<(), Error> {
    let key = lake.path(&plan_key(id, plan.run));
    let body = serde_json::to_vec_pretty(plan).map_err(|e| Error::Plans { key: key.to_string(), source: e.into() })?;
    let options = PutOptions { mode: PutMode::Create, ..Default::default() };
    match lake.store.put_opts(&key, PutPayload::from(body), options).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
            let other = match lake.store.get(&key).await {
                Ok(got) => got.bytes().await.ok().and_then(|b| serde_json::from_slice::<Plan>(&b).ok()),
                Err(_) => None,
            };
            Err(Error::Busy {
                run: plan.run,
                by: other.as_ref().map_or_else(|| "another process".into(), |p| p.by.clone()),
                since: other.map(|p| p.created_at).unwrap_or_default(),
            })
        }
        Err(source) => Err(Error::Plans { key: key.to_string(), source: Box::new(source) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(partition: u32, start: u64) -> SinkFile {
        SinkFile { topic: "t".into(), partition, start, key: Default::default(), size: 1 }
    }

    #[test]
    fn each_plan_covers_what_the_one_before_did_and_the_new_files() {
        let first = Plan::next(None, &[file(0, 0), file(0, 10), file(1, 0)], false).unwrap();
        assert_eq!(first.run, 1);
        assert_eq!(first.through["t"], BTreeMap::from([(0, 10), (1, 0)]));
        assert!(Plan::next(Some(&first), &[file(0, 0), file(0, 10)], false).is_none(), "nothing new");
        let second = Plan::next(Some(&first), &[file(0, 0), file(0, 10), file(1, 5), file(2, 0)], false).unwrap();
        assert_eq!(second.run, 2);
        assert_eq!(second.through["t"], BTreeMap::from([(0, 10), (1, 5), (2, 0)]));
        let refresh = Plan::next(Some(&second), &[], true).unwrap();
        assert_eq!((refresh.run, refresh.full_refresh, &refresh.through), (3, true, &second.through));

        let plans = Plans(vec![first, second]);
        assert_eq!(plans.generation(&file(0, 10)), Some(1));
        assert_eq!(plans.generation(&file(1, 5)), Some(2));
        assert_eq!(plans.generation(&file(2, 0)), Some(2));
        assert_eq!(plans.generation(&file(2, 7)), None);
    }
}
