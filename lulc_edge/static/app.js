// lulc-edge web page: choose a scene (upload, or one on the server), Run, follow the job, show
// the pictures, stats and downloads. Talks only to this server's job API; a token given as
// #token=... is sent as a Bearer header.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const auth = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
const COLOURS = { Barren_Land: "#f4a460", "Built-up_Area": "#dc143c", Crop: "#ffff00",
                  Forest: "#008000", Water: "#0000ff", Unclassified: "#000000" };
const KINDS = { stack: "stack", folder: "band folder", safe: ".SAFE product", zip: "zipped product" };
// The server's messages are the command line's; say what a web user can do instead.
const HINTS = [
  [/,? ?or run with --scl-fill \d+ \([^)]*\)/,
   ', or choose a fill value under "SCL missing" and press Run again'],
  [/, band descriptions naming them, or --bands/,
   ", or band descriptions naming them (B1 ... B12, B8A, SCL)"],
  [/(fix the descriptions or )?name (the )?bands with --bands/,
   "name the bands in the file's band descriptions (B1 ... B12, B8A, SCL)"],
  [/--max-upload-mb/, "this server's upload limit"],
  [/,? ?--queue \d+/, ""],
  [/this server has no --data-root/, "this server has no scene folder"],
  [/\(Authorization: Bearer TOKEN\)/, "(open the page as http://host:port/#token=TOKEN)"],
];
let chosen = null;  // {file} or {path}
let busy = false;

function forUser(msg) {
  return HINTS.reduce((m, [re, text]) => m.replace(re, text), String(msg));
}

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
  $("status").classList.add("failed");
  $("progress-text").textContent = "failed";
  $("error").hidden = false;
  $("error").textContent = forUser(msg);
}

function choose(what) {
  chosen = what;
  if (what && what.file) {
    $("scenes").value = "";
    $("chosen").textContent = "Upload " + what.file.name + " (" +
      (what.file.size / 2 ** 20).toFixed(1) + " MB)";
  } else if (what) {
    $("file").value = "";
    $("chosen").textContent = "Scene on the server: " + what.path;
  } else {
    $("chosen").textContent = "Choose a scene first.";
  }
  $("run").disabled = busy || !chosen;
}

function start(name) {
  $("status").hidden = false; $("result").hidden = true; $("error").hidden = true;
  $("warnings").hidden = true;
  $("status").classList.remove("failed");
  $("job-name").textContent = name;
  $("progress").value = 0; $("progress-text").textContent = "sending";
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

const LINKS = { map: "GeoTIFF", qml: "QGIS style (.qml)", aux: "GDAL classes (.aux.xml)" };

async function showResult(job) {
  for (const kind of ["overlay", "mask", "annotated"]) $(kind).src = await blobUrl(job.files[kind]);
  if (job.warnings && job.warnings.length) {
    $("warnings").textContent = job.warnings.map(forUser).join("\n");
    $("warnings").hidden = false;
  }
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
  const stem = job.input.replace(/\/+$/, "").split("/").pop().replace(/\.[^.]*$/, "");
  for (const [kind, path] of Object.entries(job.files)) {
    const a = document.createElement("a");
    a.textContent = LINKS[kind] || kind + ".png";
    a.href = "#";
    a.dataset.kind = kind;
    a.onclick = async (e) => {
      e.preventDefault();
      const tmp = document.createElement("a");
      tmp.href = await blobUrl(path);
      // NAME.lulc.tif, NAME.lulc.qml, NAME.lulc.tif.aux.xml, NAME.lulc.mask.png ...
      tmp.download = stem + ".lulc." + path.split("/").pop().replace(/^map\./, "");
      tmp.click();
    };
    links.appendChild(a);
  }
  $("result").hidden = false;
}

function options() {
  const out = { confidence: $("confidence").checked };
  if ($("scl-fill").value !== "") out.scl_fill = Number($("scl-fill").value);
  return out;
}

async function run() {
  if (!chosen || busy) return;
  busy = true;
  $("run").disabled = true;
  try {
    let job;
    if (chosen.file) {
      start(chosen.file.name);
      const form = new FormData();
      form.append("file", chosen.file, chosen.file.name);
      for (const [k, v] of Object.entries(options())) form.append(k, String(v));
      job = await api("/jobs", { method: "POST", body: form });
    } else {
      start(chosen.path);
      job = await api("/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify({ path: chosen.path, ...options() }) });
    }
    await follow(job);
  } catch (e) {
    showError(e.message);
  } finally {
    busy = false;
    $("run").disabled = !chosen;
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) choose({ file: e.dataTransfer.files[0] });
});
$("file").addEventListener("change", () => {
  if ($("file").files.length) choose({ file: $("file").files[0] });
});
$("scenes").addEventListener("change", () => {
  choose($("scenes").value ? { path: $("scenes").value } : null);
});
$("run").addEventListener("click", run);

// settled once the page has asked the server what it offers (tests wait on it)
window.pageReady = Promise.allSettled([api("/data").then((d) => {
  if (!d.root) return;  // no --data-root: uploads only
  for (const s of d.details) {
    const what = (KINDS[s.kind] || s.kind) + (s.scl ? "" : ", no SCL");
    $("scenes").appendChild(new Option(s.path + " (" + what + ")", s.path));
  }
  if (!d.details.length) {
    $("scenes").options[0].textContent = "no scene here that the server can map";
    $("scenes").disabled = true;
  }
  $("server-pick").hidden = false;
}), api("/info").then((m) => {
  $("model").textContent = m.model + " (" + m.device + " " + m.precision + ")";
  $("demo").hidden = !m.demo_weights;
})]);
