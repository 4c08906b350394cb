//! Every table keeps a cell per column, and shows GPU columns only where a GPU was measured.

use super::*;
use crate::report::summarize;
use crate::report::table::Mark;
use crate::store::record::ModelStatus;
use crate::store::testdata::sample_run;

#[test]
fn every_row_has_a_cell_per_column() {
    let s = summarize(&sample_run());
    let tables = [
        summary(&s),
        latency(&s),
        throughput(&s),
        resources(&s),
        quality(&s.levels),
        models(&s),
        failed_requests(&s).unwrap(),
        environment(&s),
        recommendation(&s.recommendation),
    ];
    for t in &tables {
        assert!(!t.rows.is_empty(), "{:?}", t.header());
        for r in &t.rows {
            assert_eq!(r.cells.len(), t.columns.len(), "{:?}", t.header());
        }
    }
    // The failed model without levels still has its summary row, highlighted.
    let broken = tables[0]
        .rows
        .iter()
        .find(|r| r.cells[0].text == "broken-model")
        .unwrap();
    assert!(broken.alert);
    assert_eq!(broken.cells[2].mark, Mark::Status(ModelStatus::Failed));
}

#[test]
fn gpu_columns_only_where_a_gpu_was_measured() {
    let mut data = sample_run();
    let cpu = resources(&summarize(&data));
    assert!(!cpu.header().iter().any(|h| h.contains("GPU")));
    assert!(cpu.notes.iter().all(|n| !n.contains("NVML")));

    data.levels[0].gpu = Some(crate::store::record::GpuLevel {
        devices: vec!["NVIDIA H200".into()],
        peak_memory_bytes: 3 << 30,
        mean_utilization_pct: 41.6,
        peak_utilization_pct: 97.0,
        mean_power_w: 250.4,
        peak_power_w: 480.0,
        energy_j: 99.0,
        energy_method: "nvml: GPU energy counter".into(),
    });
    let gpu = resources(&summarize(&data));
    let header = gpu.header();
    let mem = header.iter().position(|h| *h == "GPU mem peak").unwrap();
    let util = header
        .iter()
        .position(|h| *h == "GPU util mean / peak")
        .unwrap();
    let power = header
        .iter()
        .position(|h| *h == "GPU power mean / peak")
        .unwrap();
    let row = gpu
        .rows
        .iter()
        .find(|r| {
            r.cells[0].text == data.levels[0].model && r.cells[1].text == data.levels[0].level
        })
        .unwrap();
    assert_eq!(row.cells[mem].text, "3.00 GiB");
    assert_eq!(row.cells[util].text, "42 % / 97 %");
    assert_eq!(row.cells[power].text, "250 W / 480 W");
    // A level measured without a GPU shows dashes, not zeros.
    let other = gpu.rows.iter().find(|r| !std::ptr::eq(*r, row)).unwrap();
    assert_eq!(other.cells[util].text, "—");
    assert!(gpu.notes.iter().any(|n| n.contains("NVIDIA H200")));
    for r in &gpu.rows {
        assert_eq!(r.cells.len(), gpu.columns.len());
    }
}
