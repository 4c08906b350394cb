//! The resources table: memory, CPU, the client's health, energy and its cost.

use super::{level_columns, Col};
use crate::report::format::{fmt_bytes, fmt_num};
use crate::report::run_summary::{LevelSummary, RunSummary, DEFAULT_ENERGY_PRICE_PER_KWH};
use crate::report::table::{Cell, Mark, Table};

/// Memory, CPU, the client's health, energy and its cost, and where token counts came from.
/// GPU columns (memory peak, utilisation, power) appear only when some level was measured on a
/// machine with a GPU.
pub fn resources(s: &RunSummary) -> Table {
    let with_gpu = s.levels.iter().any(|l| l.resources.gpu.is_some());
    let mut columns = Vec::from(level_columns());
    columns.extend([
        Col::figure("peak RSS", |l: &&LevelSummary| {
            fmt_bytes(l.resources.peak_rss_bytes)
        }),
        Col::figure("server CPU ms", |l: &&LevelSummary| {
            fmt_num(l.resources.server_cpu_ms, 0)
        }),
    ]);
    if with_gpu {
        columns.extend([
            Col::figure("GPU mem peak", |l: &&LevelSummary| {
                fmt_bytes(l.resources.gpu.as_ref().map(|g| g.peak_memory_bytes))
            }),
            Col::figure("GPU util mean / peak", |l: &&LevelSummary| {
                l.resources.gpu.as_ref().map_or("—".into(), |g| {
                    format!(
                        "{:.0} % / {:.0} %",
                        g.mean_utilization_pct, g.peak_utilization_pct
                    )
                })
            }),
            Col::figure("GPU power mean / peak", |l: &&LevelSummary| {
                l.resources.gpu.as_ref().map_or("—".into(), |g| {
                    format!("{:.0} W / {:.0} W", g.mean_power_w, g.peak_power_w)
                })
            }),
        ]);
    }
    columns.extend([
        Col::figure("client CPU ms", |l: &&LevelSummary| {
            fmt_num(Some(l.resources.client_cpu_ms), 0)
        }),
        Col::figure("client lag p99 ms", |l: &&LevelSummary| {
            fmt_num(Some(l.resources.client_lag_p99_ms), 2)
        }),
        Col::text("client bottleneck", |l: &&LevelSummary| {
            if l.resources.client_bottleneck {
                Cell::marked("YES", Mark::Strong)
            } else {
                Cell::new("no")
            }
        }),
        Col::figure("energy J", |l: &&LevelSummary| {
            fmt_num(l.energy.energy_j, 1)
        }),
        Col::text("method", |l: &&LevelSummary| {
            l.energy.method.clone().unwrap_or_else(|| "—".into())
        }),
        Col::figure("per 1k output tokens", |l: &&LevelSummary| {
            format!(
                "{} J / {} Wh",
                fmt_num(l.energy.j_per_1k_output_tokens, 1),
                fmt_num(l.energy.wh_per_1k_output_tokens, 4)
            )
        }),
        Col::figure("cost per 1k tokens", |l: &&LevelSummary| {
            fmt_num(l.energy.cost_per_1k_output_tokens, 6)
        }),
        Col::text("token counts", |l: &&LevelSummary| {
            let tc = &l.token_counts;
            format!(
                "{} usage / {} tokenizer / {} chunks; {} disagree",
                tc.usage, tc.tokenizer, tc.chunks, tc.usage_disagreements
            )
        }),
    ]);
    let mut t = Table::build(&columns, &s.levels, |l| l.resources.client_bottleneck);
    if with_gpu {
        let names: Vec<&str> = s
            .levels
            .iter()
            .filter_map(|l| l.resources.gpu.as_ref())
            .flat_map(|g| g.devices.iter().map(String::as_str))
            .take(4)
            .collect();
        t.notes.push(format!(
            "GPU figures are NVML's, whole-device ({}): memory in use by every process, utilisation = share of time a kernel ran. A level whose GPU ran kernels adds the GPU's measured energy to its energy (method column); an idle GPU's draw is left out.",
            if names.is_empty() { "no name".to_string() } else { names.join(", ") }
        ));
    }
    let price = s
        .levels
        .first()
        .map_or(DEFAULT_ENERGY_PRICE_PER_KWH, |l| l.energy.price_per_kwh);
    t.notes.push(format!(
        "Cost is approximate: energy × {price:.2} per kWh (options.energy_price_per_kwh; default {DEFAULT_ENERGY_PRICE_PER_KWH:.2})."
    ));
    t
}
