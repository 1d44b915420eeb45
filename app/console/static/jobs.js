// Jobs: a card per job with a live progress bar (the job's event stream), per-action
// `affected`, cancel, revert (after its dry run), output and row-error downloads; and the
// history with status and kind filters.
import { download, get, post, query, watchJob } from "./api.js";
import { confirmDialog, field, fmt, h, select, when } from "./dom.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const title = (type) => type.charAt(0).toUpperCase() + type.slice(1).replaceAll("_", " ");
const watching = new Map(); // job id → AbortController
const cards = new Map(); // job id → Set of cards showing it

export class JobCard {
  constructor(job, { onNew } = {}) {
    this.onNew = onNew;
    this.el = h("article", { class: "job card", id: `job-${job.id}`, "aria-labelledby": `job-${job.id}-title` });
    // The bar stays one element, so its width glides from one update to the next.
    this.fill = h("span", { class: "fill" });
    this.bar = h("div", { class: "bar", role: "progressbar", "aria-label": `Job ${job.id} progress`, "aria-valuemin": "0", "aria-valuemax": "100" }, this.fill);
    this.head = h("div", { class: "job-head" });
    this.body = h("div", { class: "job-body" });
    this.el.append(this.head, this.bar, this.body);
    if (!cards.has(job.id)) cards.set(job.id, new Set());
    cards.get(job.id).add(this);
    this.update(job);
    if (!FINISHED.has(job.status)) follow(job.id);
  }

  update(job) {
    this.job = job;
    const pct = job.total ? Math.floor((100 * job.processed) / job.total) : FINISHED.has(job.status) ? 100 : 0;
    const canRevert = FINISHED.has(job.status) && !job.reverted_by;
    const output = job.kind === "revert" || (job.actions || []).some((a) => a.type === "generate_coupons" || a.type === "generate_links");
    const error = h("p", { class: "error", role: "alert" });
    const act = (label, fn, cls = "") =>
      h(
        "button",
        {
          type: "button",
          class: cls,
          onclick: async (e) => {
            e.target.disabled = true;
            error.textContent = "";
            try {
              await fn();
            } catch (err) {
              error.textContent = err.message;
            } finally {
              e.target.disabled = false;
            }
          },
        },
        label,
      );
    this.el.dataset.status = job.status;
    this.head.replaceChildren(
      h("h3", { id: `job-${job.id}-title` }, `#${job.id} `, job.name || title(job.kind === "actions" ? (job.actions || []).map((a) => a.type).join(", ") || "job" : job.kind)),
      h("span", { class: `badge ${job.status}` }, job.status),
    );
    this.bar.setAttribute("aria-valuenow", String(pct));
    this.fill.style.width = `${pct}%`;
    const parts = [
      h("p", { class: "hint" }, h("span", { class: "pct" }, `${pct} %`), ` · ${fmt(job.processed)} of ${fmt(job.total)} contacts`, job.run_at && job.status === "queued" ? ` · runs at ${when(job.run_at)}` : "", job.created_by ? ` · by ${job.created_by}` : "", ` · ${when(job.created_at)}`),
      job.kind === "import"
        ? h("p", { class: "import-counts" }, `created ${fmt(job.created)} · updated ${fmt(job.updated)} · rejected `, h("strong", { class: "rejected" }, fmt(job.rejected)), job.unmapped_columns && job.unmapped_columns.length ? ` · unmapped: ${job.unmapped_columns.join(", ")}` : "")
        : null,
      (job.actions || []).length
        ? h(
            "ul",
            { class: "affected" },
            job.actions.map((a) => h("li", {}, title(a.type), ": ", h("strong", { "data-affected": a.affected ?? "" }, a.affected == null ? "—" : fmt(a.affected)), " changed")),
          )
        : null,
      job.kind === "revert" ? h("p", { class: "hint" }, `reverts #${job.reverts}`, job.conflicts ? ` · ${fmt(job.conflicts)} conflicts (left as they are)` : "") : null,
      job.reverted_by ? h("p", { class: "hint" }, `reverted by #${job.reverted_by}`) : null,
      job.error ? h("p", { class: "error" }, job.error) : null,
      h(
        "div",
        { class: "buttons" },
        FINISHED.has(job.status) ? null : act("Cancel", () => post(`/v1/jobs/${job.id}/cancel`).then((j) => j && j.id && this.show(j)), "needs-full"),
        canRevert ? act("Revert…", () => this.revert(), "needs-full") : null,
        output && FINISHED.has(job.status) ? act("Download output", () => download("GET", `/v1/jobs/${job.id}/output`, undefined, `job-${job.id}-output.csv`)) : null,
        job.kind === "import" && FINISHED.has(job.status) && job.rejected ? act("Download rejected rows", () => download("GET", `/v1/jobs/${job.id}/errors`, undefined, `job-${job.id}-errors.csv`)) : null,
      ),
      error,
    ];
    this.body.replaceChildren(...parts.filter(Boolean));
  }

  show(job) {
    for (const c of cards.get(job.id) || []) c.update(job);
  }

  async revert() {
    const job = this.job;
    const dry = await post(`/v1/jobs/${job.id}/revert/dry-run`);
    const ok = await confirmDialog(
      `Revert job #${job.id}?`,
      [
        h("p", {}, `It would give back earlier values on ${fmt(dry.total)} contacts; values changed since by others stay (${fmt(dry.conflicts)} conflicts).`),
        h("ul", {}, dry.actions.map((a) => h("li", {}, `${title(a.type)}: ${fmt(a.affected)}`))),
      ],
      "Revert",
    );
    if (!ok) return;
    const revert = await post(`/v1/jobs/${job.id}/revert`);
    if (this.onNew) this.onNew(revert);
    this.show(await get(`/v1/jobs/${job.id}`));
  }
}

function broadcast(job) {
  for (const c of cards.get(job.id) || []) c.update(job);
}

// Follow a job's event stream until it ends, then read it once more (the final state).
async function follow(id) {
  if (watching.has(id)) return;
  const controller = new AbortController();
  watching.set(id, controller);
  try {
    await watchJob(id, broadcast, controller.signal);
  } catch (error) {
    if (error.name === "AbortError") return;
  } finally {
    watching.delete(id);
  }
  try {
    const job = await get(`/v1/jobs/${id}`);
    broadcast(job);
    if (!FINISHED.has(job.status)) setTimeout(() => follow(id), 1000);
  } catch {
    /* the card keeps what it had */
  }
}

export class JobsPanel {
  constructor(el) {
    this.el = el;
    this.list = h("div", { class: "job-list", id: "job-list" });
    this.status = select([["", "any status"], "queued", "running", "succeeded", "failed", "cancelled"], "", { id: "jobs-status", onchange: () => this.load() });
    this.kind = select([["", "any kind"], "actions", "import", "revert"], "", { id: "jobs-kind", onchange: () => this.load() });
    this.more = h("button", { type: "button", id: "jobs-more", hidden: true, onclick: () => this.load(this.before) }, "Older jobs");
    el.append(
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "card-head" },
          h("h2", {}, "Jobs"),
          h("div", { class: "tools" }, field("Status", this.status, { class: "inline-field" }), field("Kind", this.kind, { class: "inline-field" }), h("button", { type: "button", id: "jobs-refresh", onclick: () => this.load() }, "Refresh")),
        ),
        this.list,
        this.more,
      ),
    );
  }

  async load(before) {
    const seq = (this.seq = (this.seq || 0) + 1); // a slower, older listing never wins
    const page = await get(`/v1/jobs${query({ status: this.status.value, kind: this.kind.value, before, limit: 20 })}`);
    if (seq !== this.seq) return;
    const made = page.jobs.map((j) => new JobCard(j, { onNew: (job) => this.prepend(job) }).el);
    if (before) this.list.append(...made);
    else this.list.replaceChildren(...(made.length ? made : [h("p", { class: "hint" }, "No jobs yet.")]));
    this.before = page.next_before;
    this.more.hidden = page.next_before == null;
  }

  prepend(job) {
    this.list.querySelector("p.hint")?.remove();
    this.list.prepend(new JobCard(job, { onNew: (j) => this.prepend(j) }).el);
  }
}
