// lulc-edge web page: upload or pick a scene, follow the job, show pictures and stats.
// Talks only to this server's job API; a token given as #token=... is sent as a Bearer header.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const auth = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
const COLOURS = { Barren_Land: "#f4a460", "Built-up_Area": "#dc143c", Crop: "#ffff00",
                  Forest: "#008000", Water: "#0000ff", Unclassified: "#000000" };

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...auth, ...(options.headers || {}) } });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

async function blobUrl(path) {
  const r = await fetch(path, { headers: auth });
  if (!r.ok) throw new Error("cannot fetch " + path + ": " + r.status);
  return URL.createObjectURL(await r.blob());
}

function showError(msg) {
  $("status").hidden = false;
  $("error").hidden = false;
  $("error").textContent = msg;
}

function start(name) {
  $("status").hidden = false; $("result").hidden = true; $("error").hidden = true;
  $("job-name").textContent = name;
  $("progress").value = 0; $("progress-text").textContent = "queued";
}

async function follow(job) {
  while (job.status === "queued" || job.status === "running") {
    $("progress").value = job.progress || 0;
    $("progress-text").textContent = job.status === "queued" ? "queued"
      : Math.round(100 * (job.progress || 0)) + " %";
    await new Promise((ok) => setTimeout(ok, 400));
    job = await api("/jobs/" + job.id);
  }
  if (job.status !== "done") throw new Error(job.error || "job " + job.status);
  $("progress").value = 1;
  $("progress-text").textContent = "done in " + job.seconds.toFixed(1) + " s (" +
    job.width + " x " + job.height + " px, " + job.device + " " + job.precision + ")";
  await showResult(job);
}

async function showResult(job) {
  $("overlay").src = await blobUrl(job.files.overlay);
  $("mask").src = await blobUrl(job.files.mask);
  const body = $("stats").querySelector("tbody");
  body.replaceChildren();
  for (const [name, pct] of Object.entries(job.class_percent)) {
    const tr = document.createElement("tr");
    const ha = job.class_hectares ? job.class_hectares[name].toFixed(2) : "-";
    tr.innerHTML = `<td><span class="swatch"></span></td><td></td><td>${pct.toFixed(2)}</td><td>${ha}</td>`;
    tr.querySelector(".swatch").style.background = COLOURS[name] || "#888";
    tr.children[1].textContent = name;
    tr.dataset.class = name;
    body.appendChild(tr);
  }
  const links = $("downloads");
  links.replaceChildren(document.createTextNode("Download: "));
  const stem = job.input.replace(/\.[^.\/]*$/, "").split("/").pop();
  for (const [kind, path] of Object.entries(job.files)) {
    const a = document.createElement("a");
    a.textContent = kind === "map" ? "GeoTIFF" : kind + ".png";
    a.href = "#";
    a.onclick = async (e) => {
      e.preventDefault();
      const tmp = document.createElement("a");
      tmp.href = await blobUrl(path);
      tmp.download = stem + (kind === "map" ? ".lulc.tif" : ".lulc." + kind + ".png");
      tmp.click();
    };
    links.appendChild(a);
  }
  $("result").hidden = false;
}

function options() {
  return { confidence: $("confidence").checked };
}

async function upload(file) {
  start(file.name);
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [k, v] of Object.entries(options())) form.append(k, String(v));
  try {
    await follow(await api("/jobs", { method: "POST", body: form }));
  } catch (e) { showError(e.message); }
}

async function runPath(path) {
  start(path);
  try {
    await follow(await api("/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify({ path, ...options() }) }));
  } catch (e) { showError(e.message); }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
});
$("file").addEventListener("change", () => { if ($("file").files.length) upload($("file").files[0]); });
$("run-path").addEventListener("click", () => runPath($("scenes").value));

api("/data").then((d) => {
  if (!d.scenes.length) return;
  for (const s of d.scenes) $("scenes").appendChild(new Option(s, s));
  $("server-pick").hidden = false;
}).catch(() => {});

api("/info").then((m) => {
  $("model").textContent = m.model + " (" + m.device + " " + m.precision + ")";
  $("demo").hidden = !m.demo_weights;
}).catch(() => {});
