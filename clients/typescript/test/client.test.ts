// Run by tests/clients/test_typescript_client.py against a live gateway seeded with 12 BTC
// predictions and 10 verifications: CRYPTOCAST_BASE_URL (and CRYPTOCAST_API_KEY).
import assert from "node:assert/strict";
import { test } from "node:test";

import { CryptoCastClient, CryptoCastError, type Prediction } from "../src/index.js";

const baseUrl = process.env.CRYPTOCAST_BASE_URL;
if (!baseUrl) throw new Error("set CRYPTOCAST_BASE_URL to a running gateway");
const api = new CryptoCastClient(baseUrl);

test("symbols", async () => {
  assert.deepEqual(await api.symbols(), {
    interval: "4h",
    intervals: ["4h"],
    symbols: ["BTC", "ETH", "SOL", "XRP"],
  });
});

test("latest prediction and pages", async () => {
  const latest = await api.latestPrediction("btc");
  assert.equal(latest.symbol, "BTC");
  assert.equal(typeof latest.predicted_close, "number");
  const page = await api.predictionsPage("btc", { limit: 5 });
  assert.equal(page.data.length, 5);
  assert.equal(page.data[0].event_id, latest.event_id);
  assert.ok(page.next_cursor);
  const all: Prediction[] = [];
  for await (const p of api.predictions("BTC", { limit: 5 })) all.push(p);
  assert.equal(all.length, 12);
  assert.deepEqual(all.slice(0, 5).map((p) => p.event_id), page.data.map((p) => p.event_id));
  const targets = all.map((p) => Date.parse(p.target_time));
  assert.deepEqual(targets, [...targets].sort((a, b) => b - a));
  let verdicts = 0;
  for await (const v of api.verifications("btc", { limit: 3 })) {
    assert.equal(typeof v.within_tolerance, "boolean");
    verdicts += 1;
  }
  assert.equal(verdicts, 10);
});

test("accuracy and the serving model", async () => {
  const accuracy = await api.accuracy("btc", "all");
  const cards = Object.values(accuracy.models);
  assert.equal(cards.length, 1);
  assert.equal(cards[0].n, 10);
  const model = await api.model("btc");
  assert.ok(model.features.length > 0);
  assert.equal(typeof model.beats_naive, "boolean");
});

test("errors carry the status and the gateway's message", async () => {
  await assert.rejects(api.latestPrediction("doge"), (error: unknown) => {
    assert.ok(error instanceof CryptoCastError);
    assert.equal(error.status, 404);
    assert.match(error.message, /unknown symbol/);
    return true;
  });
  await assert.rejects(api.predictionsPage("btc", { cursor: "nonsense!" }), /400: query\.cursor/);
});

test("operator requests need the key", async () => {
  const model = await api.model("btc");
  const name = `${model.model.name}@${model.model.version}`;
  assert.throws(() => api.operatorRequest("btc", "pin", { model: name }), /apiKey/);
  const wrong = new CryptoCastClient(baseUrl, { apiKey: "wrong" });
  await assert.rejects(wrong.operatorRequest("btc", "pin", { model: name }), /^CryptoCastError: 401/);
  const operator = new CryptoCastClient(baseUrl, { apiKey: process.env.CRYPTOCAST_API_KEY });
  const accepted = await operator.operatorRequest("btc", "pin", { model: name, reason: "ts test" });
  assert.equal(accepted.status, "accepted");
  let history = await api.modelsHistory("btc");
  for (let i = 0; i < 50 && !history.data.some((c) => c.event_id === accepted.event_id); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    history = await api.modelsHistory("btc");
  }
  assert.ok(history.data.some((c) => c.event_id === accepted.event_id && c.kind === "pinned"));
});

test("stream URL", () => {
  assert.equal(
    new CryptoCastClient("https://example.com:8443/").streamUrl(["btc", "eth"]),
    "wss://example.com:8443/api/v1/stream?models=served&symbols=BTC%2CETH",
  );
});
