// A front end's usual calls, written as its developer would with openapi-fetch and the
// types `openapi-typescript openapi.yaml -o api.d.ts` generates. `tsc --strict` must
// accept it as it stands: no casts, no narrowing the API should not need.
import createClient from "openapi-fetch";
import type { components, paths } from "./api";

type Selection = components["schemas"]["Selection"];
type Job = components["schemas"]["Job"];

const api = createClient<paths>({
  baseUrl: "http://127.0.0.1:8000",
  headers: { Authorization: "Bearer aud_…" },
});

// A selection as one writes it: defaults (match, deleted, a mailing's event) left out.
const selection: Selection = {
  include: [
    { type: "tag", tags: ["VIP", "newsletter"] },
    { type: "mailing", mailings: [3] },
  ],
  exclude: [{ type: "group", groups: ["Blacklist"] }],
  filter: {
    and: [
      { field: "age", op: "between", value: [25, 40] },
      { event: { type: "PURCHASE", within_days: 30 }, agg: "count", op: "gte", value: 1 },
      { not: { detail: "plan", op: "eq", value: "free" } },
    ],
  },
};

export async function count(): Promise<number> {
  const { data, error } = await api.POST("/v1/selections/count", { body: selection });
  if (error) throw new Error(error.error.message);
  return data.total;
}

export async function preview(after?: number) {
  const { data, error } = await api.POST("/v1/selections/preview", {
    body: { selection, limit: 50, after, fields: ["id", "email", "detail:plan"] },
  });
  if (error) {
    // Each problem points at the part of the request that caused it.
    for (const detail of error.error.details) console.warn(detail.path, detail.message);
    return null;
  }
  return { total: data.total, rows: data.contacts, next: data.next_after };
}

export async function dryRun() {
  const { data, error } = await api.POST("/v1/jobs/dry-run", {
    body: { selection, actions: [{ type: "add_tags", tags: ["autumn"] }] },
  });
  if (error) throw new Error(error.error.message);
  return data.actions.map((a) => `${a.type}: ${a.affected}`);
}

export async function submit(seen: number): Promise<Job> {
  const { data, error, response } = await api.POST("/v1/jobs", {
    body: {
      selection,
      actions: [
        { type: "add_tags", tags: ["autumn"] },
        { type: "set_score", value: 10 },
        { type: "identify_sex" },
        { type: "generate_coupons", name: "AUTUMN", length: 10 },
      ],
      expected_total: seen,
      name: "Autumn campaign",
    },
    headers: { "Idempotency-Key": crypto.randomUUID() },
  });
  if (error) throw new Error(`${response.status}: ${error.error.message}`);
  return data;
}

export async function status(id: number): Promise<string> {
  const { data, error } = await api.GET("/v1/jobs/{job_id}", {
    params: { path: { job_id: id } },
  });
  if (error) throw new Error(error.error.message);
  const done = data.total ? Math.round((100 * data.processed) / data.total) : 0;
  const affected = data.actions.map((a) => a.affected ?? 0).reduce((x, y) => x + y, 0);
  return `${data.status} ${done}% (${affected} changes)`;
}

export async function history(status?: "running" | "succeeded") {
  const { data } = await api.GET("/v1/jobs", { params: { query: { status, limit: 20 } } });
  return data?.jobs.map((j) => `${j.id} ${j.kind} ${j.status}`) ?? [];
}

export async function revert(id: number): Promise<Job | null> {
  const check = await api.POST("/v1/jobs/{job_id}/revert/dry-run", {
    params: { path: { job_id: id } },
  });
  if (check.error || check.data.conflicts > 0) return null;
  const { data, error } = await api.POST("/v1/jobs/{job_id}/revert", {
    params: { path: { job_id: id } },
  });
  if (error) throw new Error(error.error.message);
  return data;
}

export async function exportCsv(): Promise<Blob> {
  const { data, error } = await api.POST("/v1/selections/export", {
    body: { selection, fields: ["email", "first_name", "tags"], format: "csv" },
    parseAs: "text",
  });
  if (error) throw new Error(error.error.message);
  return new Blob([data], { type: "text/csv" });
}

export async function tags(prefix: string) {
  const { data } = await api.GET("/v1/tags", { params: { query: { prefix, limit: 10 } } });
  return data?.tags.map((t) => `${t.name} (${t.contacts})`) ?? [];
}
