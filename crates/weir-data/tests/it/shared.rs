//! Shared datasets: the same commit protocol on a local folder and on a real S3-compatible
//! server (s3s-fs, started on loopback), each test run on both.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int64Array};
use jiff::{SignedDuration, Timestamp};
use weir_data::testing::S3Server;
use weir_data::{DataError, PartitionKey, SharedDataset, SharedWriteOptions};
use weir_store::{DatasetCommitStore, SqlStore};

use super::{id_value_batch, id_value_schema};

/// Where a test's dataset lives, and how to open it again "from another host".
pub struct Place {
    _dir: tempfile::TempDir,
    _server: Option<S3Server>,
    commits: Arc<dyn DatasetCommitStore>,
    open: Box<dyn Fn(Arc<dyn DatasetCommitStore>) -> SharedDataset + Send + Sync>,
}

impl Place {
    /// A new handle on the dataset, as another process would open it.
    pub fn dataset(&self) -> SharedDataset {
        (self.open)(self.commits.clone())
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn DatasetCommitStore> {
    Arc::new(SqlStore::open(&dir.path().join("weir.db")).await.unwrap())
}

pub async fn local() -> Place {
    let dir = tempfile::tempdir().unwrap();
    let commits = store(&dir).await;
    let folder = dir.path().join("shared/sales");
    Place {
        _dir: dir,
        _server: None,
        commits,
        open: Box::new(move |c| SharedDataset::open(folder.to_str().unwrap(), c).unwrap()),
    }
}

pub async fn s3() -> Place {
    let dir = tempfile::tempdir().unwrap();
    let commits = store(&dir).await;
    let server = S3Server::start(Ipv4Addr::LOCALHOST, &dir.path().join("s3"));
    server.bucket("lake");
    let client = server.store("lake");
    Place {
        _dir: dir,
        _server: Some(server),
        commits,
        open: Box::new(move |c| {
            SharedDataset::with_store(
                "s3://lake/sales",
                client.clone(),
                object_store::path::Path::from("sales"),
                c,
            )
        }),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_772_409_600).unwrap()
}

fn later(t: Timestamp, secs: i64) -> Timestamp {
    t + SignedDuration::from_secs(secs)
}

fn day(d: &str) -> PartitionKey {
    PartitionKey::new([("day", d)]).unwrap()
}

/// One part file per written batch.
fn small_parts() -> SharedWriteOptions {
    SharedWriteOptions {
        part_bytes: 1,
        lease: Duration::from_secs(60),
        owner: "test".into(),
        ..Default::default()
    }
}

async fn ids_of(ds: &SharedDataset, key: &PartitionKey) -> Vec<i64> {
    let mut ids: Vec<i64> = ds
        .read_partition(key)
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..col.len()).map(|i| col.value(i)).collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn file_set(head: &weir_store::PartitionHead) -> BTreeSet<String> {
    head.files.iter().map(|f| f.path.clone()).collect()
}

pub async fn only_committed_files_are_read(place: Place) {
    let ds = place.dataset();
    let key = day("2026-03-02");
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    for i in 0..3 {
        w.write(&id_value_batch(i * 100..i * 100 + 100, i), now())
            .await
            .unwrap();
    }
    // Three parts are in the store already (one per write), but no reader sees them.
    assert_eq!(ds.objects().await.unwrap().len(), 3);
    assert!(ds.partitions().await.unwrap().is_empty());
    let missing = ds.read_partition(&key).await.unwrap_err();
    assert!(
        matches!(missing, DataError::PartitionNotFound { .. }),
        "{missing}"
    );
    let head = w.commit(now()).await.unwrap();
    assert_eq!((head.version, head.rows, head.files.len()), (1, 300, 3));
    assert!(
        head.files
            .iter()
            .all(|f| f.path.starts_with("day=2026-03-02/part-"))
    );
    // Another host's handle reads the same rows; the footers agree with the store.
    let other = place.dataset();
    assert_eq!(ids_of(&other, &key).await, (0..300).collect::<Vec<_>>());
    assert_eq!(other.count_rows(&key).await.unwrap(), 300);
    let objects: BTreeSet<String> = other.objects().await.unwrap().into_iter().collect();
    assert_eq!(objects, file_set(&head));
    assert!(other.unreferenced_objects().await.unwrap().is_empty());
}

pub async fn a_rewrite_replaces_the_partition_and_garbage_waits_for_readers(place: Place) {
    let ds = place.dataset();
    let key = day("2026-03-02");
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    w.write(&id_value_batch(0..100, 1), now()).await.unwrap();
    let v1 = w.commit(now()).await.unwrap();
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    w.write(&id_value_batch(100..150, 2), now()).await.unwrap();
    w.write(&id_value_batch(150..160, 2), now()).await.unwrap();
    let v2 = w.commit(later(now(), 10)).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(ids_of(&ds, &key).await, (100..160).collect::<Vec<_>>());
    // Both versions' files are kept while a reader that listed v1 may still read them.
    let all: BTreeSet<String> = ds.objects().await.unwrap().into_iter().collect();
    let both: BTreeSet<String> = file_set(&v1).union(&file_set(&v2)).cloned().collect();
    assert_eq!(all, both);
    let report = ds
        .collect_garbage(later(now(), 1800), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.deleted_files, report.forgotten), (0, 0));
    let report = ds
        .collect_garbage(later(now(), 7200), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.deleted_files, report.forgotten), (1, 1));
    let left: BTreeSet<String> = ds.objects().await.unwrap().into_iter().collect();
    assert_eq!(left, file_set(&v2));
    assert_eq!(ds.commits().await.unwrap().len(), 1);
    assert_eq!(ids_of(&ds, &key).await, (100..160).collect::<Vec<_>>());
}

pub async fn a_dead_writer_is_rolled_back_from_what_the_store_recorded(place: Place) {
    let ds = place.dataset();
    let key = day("2026-03-03");
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    w.write(&id_value_batch(0..10, 1), now()).await.unwrap();
    w.write(&id_value_batch(10..20, 1), later(now(), 30))
        .await
        .unwrap();
    let id = w.commit_id().to_owned();
    drop(w); // the writer "dies": nothing commits, its two parts stay behind
    assert_eq!(ds.objects().await.unwrap().len(), 2);
    assert!(ds.partitions().await.unwrap().is_empty());
    // Its lease (60 s from its last part, at +30 s) still holds at +60 s: nothing is touched.
    let grace = Duration::from_secs(3600);
    let report = ds.collect_garbage(later(now(), 60), grace).await.unwrap();
    assert!(report.rolled_back.is_empty());
    assert_eq!(ds.objects().await.unwrap().len(), 2);
    // At +91 s it has run out: rolled back, both files deleted, the row kept a while longer.
    let report = ds.collect_garbage(later(now(), 91), grace).await.unwrap();
    assert_eq!(report.rolled_back, std::slice::from_ref(&id));
    assert_eq!((report.deleted_files, report.forgotten), (2, 0));
    assert!(ds.objects().await.unwrap().is_empty());
    let report = ds
        .collect_garbage(later(now(), 91 + 3601), grace)
        .await
        .unwrap();
    assert_eq!((report.deleted_files, report.forgotten), (0, 1));
    assert!(ds.commits().await.unwrap().is_empty());
}

pub async fn a_writer_whose_lease_ran_out_cannot_commit(place: Place) {
    let ds = place.dataset();
    let key = day("2026-03-04");
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    w.write(&id_value_batch(0..5, 1), now()).await.unwrap();
    let v1 = w.commit(now()).await.unwrap();
    // A slow writer: its lease runs out and another host's collector rolls it back.
    let opts = SharedWriteOptions {
        part_bytes: 1 << 20,
        ..small_parts()
    };
    let mut slow = ds
        .writer(&key, id_value_schema(), opts, now())
        .await
        .unwrap();
    slow.write(&id_value_batch(0..1000, 9), now())
        .await
        .unwrap();
    let report = place
        .dataset()
        .collect_garbage(later(now(), 61), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.rolled_back.len(), 1);
    let err = slow.commit(later(now(), 62)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Commit {
                transient: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("it was rolled back"), "{err}");
    // The committed version is untouched and nothing of the late writer was put.
    assert_eq!(ds.head(&key).await.unwrap().unwrap(), v1);
    assert_eq!(ids_of(&ds, &key).await, (0..5).collect::<Vec<_>>());
    let objects: BTreeSet<String> = ds.objects().await.unwrap().into_iter().collect();
    assert_eq!(objects, file_set(&v1));
}

pub async fn racing_writers_of_one_partition_commit_once(place: Place) {
    let a = place.dataset();
    let b = place.dataset();
    let key = day("2026-03-05");
    let mut wa = a
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    let mut wb = b
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    wa.write(&id_value_batch(0..10, 1), now()).await.unwrap();
    wb.write(&id_value_batch(10..30, 2), now()).await.unwrap();
    let head = wa.commit_if_unchanged(now()).await.unwrap();
    let err = wb.commit_if_unchanged(now()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("another writer committed version 1"),
        "{err}"
    );
    // The loser's files are gone at once; the winner's rows are the partition.
    let objects: BTreeSet<String> = a.objects().await.unwrap().into_iter().collect();
    assert_eq!(objects, file_set(&head));
    assert_eq!(ids_of(&b, &key).await, (0..10).collect::<Vec<_>>());
    // An append on top of the winner keeps its rows.
    let mut wc = b
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    wc.write(&id_value_batch(30..35, 3), now()).await.unwrap();
    let appended = wc.append(now()).await.unwrap();
    assert_eq!((appended.version, appended.rows), (2, 15));
    assert_eq!(
        ids_of(&a, &key).await,
        (0..10).chain(30..35).collect::<Vec<_>>()
    );
}

pub async fn many_writers_commit_many_partitions_at_once(place: Place) {
    let mut tasks = Vec::new();
    for host in 0..4i64 {
        let ds = place.dataset();
        tasks.push(tokio::spawn(async move {
            for d in 0..6i64 {
                let key = day(&format!("2026-04-{:02}", host * 6 + d + 1));
                let mut w = ds
                    .writer(&key, id_value_schema(), small_parts(), now())
                    .await
                    .unwrap();
                let start = (host * 6 + d) * 1000;
                for part in 0..3 {
                    let lo = start + part * 100;
                    w.write(&id_value_batch(lo..lo + 100, host), now())
                        .await
                        .unwrap();
                }
                w.commit(now()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ds = place.dataset();
    let heads = ds.partitions().await.unwrap();
    assert_eq!(heads.len(), 24);
    for (i, head) in heads.iter().enumerate() {
        let key = PartitionKey::parse(&head.partition).unwrap();
        assert_eq!(head.rows, 300);
        assert_eq!(
            ds.count_rows(&key).await.unwrap(),
            300,
            "{}",
            head.partition
        );
        let start = i as i64 * 1000;
        assert_eq!(
            ids_of(&ds, &key).await,
            (start..start + 300).collect::<Vec<_>>()
        );
    }
    assert!(ds.unreferenced_objects().await.unwrap().is_empty());
    assert_eq!(ds.objects().await.unwrap().len(), 72);
}

#[tokio::test]
async fn a_location_weir_cannot_write_to_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let commits = store(&dir).await;
    let err = SharedDataset::open("ftp://host/sales", commits.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid dataset location: \"ftp://host/sales\" is not a location weir can write to; use s3://BUCKET/PREFIX, file:///PATH or a folder path"
    );
    let err = SharedDataset::open("s3:///sales", commits).unwrap_err();
    assert!(err.to_string().contains("names no bucket"), "{err}");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_local_folder {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::local().await).await;
                }
            )*
        }
        mod on_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::s3().await).await;
                }
            )*
        }
    };
}

on_both!(
    only_committed_files_are_read,
    a_rewrite_replaces_the_partition_and_garbage_waits_for_readers,
    a_dead_writer_is_rolled_back_from_what_the_store_recorded,
    a_writer_whose_lease_ran_out_cannot_commit,
    racing_writers_of_one_partition_commit_once,
    many_writers_commit_many_partitions_at_once,
);

/// A part that could not be put loses its rows: the writer refuses to commit what is left.
#[tokio::test]
async fn a_writer_whose_part_failed_cannot_commit_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let commits = store(&dir).await;
    let folder = dir.path().join("sales");
    let ds = SharedDataset::open(folder.to_str().unwrap(), commits).unwrap();
    // A file where the partition's folder would go: every put into it fails.
    std::fs::write(folder.join("day=2026-03-06"), b"not a folder").unwrap();
    let key = day("2026-03-06");
    let mut w = ds
        .writer(&key, id_value_schema(), small_parts(), now())
        .await
        .unwrap();
    let err = w.write(&id_value_batch(0..10, 1), now()).await.unwrap_err();
    assert!(matches!(err, DataError::ObjectStore { .. }), "{err}");
    std::fs::remove_file(folder.join("day=2026-03-06")).unwrap();
    // The folder is fine now, but the first ten rows are gone: nothing may commit.
    let err = w
        .write(&id_value_batch(10..20, 1), now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was committed"), "{err}");
    let err = w.commit(now()).await.unwrap_err();
    assert!(err.to_string().contains("nothing was committed"), "{err}");
    assert!(ds.partitions().await.unwrap().is_empty());
    assert!(ds.objects().await.unwrap().is_empty());
}
