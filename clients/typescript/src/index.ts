// A small fetch-based client for the CryptoCast gateway's versioned API. Its types come
// from src/schema.d.ts, generated from the gateway's OpenAPI document (npm run generate).
import type { components, operations, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Symbols = Schemas["Symbols"];
export type Prediction = Schemas["Prediction"];
export type Verification = Schemas["Verification"];
export type PredictionPage = Schemas["PredictionPage"];
export type VerificationPage = Schemas["VerificationPage"];
export type Accuracy = Schemas["Accuracy"];
export type ServingModel = Schemas["ServingModel"];
export type ModelHistory = Schemas["ModelHistory"];
export type Accepted = Schemas["Accepted"];
export type OperatorRequest = Schemas["OperatorRequest"];
export type Window = NonNullable<operations["accuracy_stats_api_v1_accuracy__symbol__get"]["parameters"]["query"]>["window"];
export type Action = paths["/api/v1/models/{symbol}/{action}"]["post"]["parameters"]["path"]["action"];
export type PageQuery = NonNullable<paths["/api/v1/predictions/{symbol}"]["get"]["parameters"]["query"]>;

/** A non-2xx answer, with the gateway's `message`. */
export class CryptoCastError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(`${status}: ${message}`);
    this.name = "CryptoCastError";
  }
}

export interface ClientOptions {
  /** Sent as X-API-Key on operator requests. */
  apiKey?: string;
  fetch?: typeof fetch;
}

export class CryptoCastClient {
  readonly baseUrl: string;
  private readonly apiKey?: string;
  private readonly fetcher: typeof fetch;

  constructor(baseUrl = "http://localhost:8000", options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetcher = options.fetch ?? fetch;
  }

  private async request<T>(
    method: string,
    path: string,
    query: Record<string, string | number | undefined> = {},
    init: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const response = await this.fetcher(url, {
      method,
      headers: {
        accept: "application/json",
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        ...init.headers,
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    if (!response.ok) {
      const message =
        body && typeof body === "object" && "message" in body ? String(body.message) : text;
      throw new CryptoCastError(response.status, message, body);
    }
    return body as T;
  }

  symbols(): Promise<Symbols> {
    return this.request("GET", "/api/v1/symbols");
  }

  /** The newest prediction (CryptoCastError 404 before the first). */
  latestPrediction(symbol: string): Promise<Prediction> {
    return this.request("GET", `/api/v1/predictions/${encodeURIComponent(symbol)}/latest`);
  }

  predictionsPage(symbol: string, query: PageQuery = {}): Promise<PredictionPage> {
    return this.request("GET", `/api/v1/predictions/${encodeURIComponent(symbol)}`, toQuery(query));
  }

  verificationsPage(symbol: string, query: PageQuery = {}): Promise<VerificationPage> {
    return this.request("GET", `/api/v1/verifications/${encodeURIComponent(symbol)}`, toQuery(query));
  }

  /** Every prediction in the range, newest first, following next_cursor. */
  async *predictions(symbol: string, query: Omit<PageQuery, "cursor"> = {}): AsyncGenerator<Prediction> {
    let cursor: string | null | undefined;
    do {
      const page = await this.predictionsPage(symbol, { ...query, cursor: cursor ?? undefined });
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  async *verifications(symbol: string, query: Omit<PageQuery, "cursor"> = {}): AsyncGenerator<Verification> {
    let cursor: string | null | undefined;
    do {
      const page = await this.verificationsPage(symbol, { ...query, cursor: cursor ?? undefined });
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  accuracy(symbol: string, window: Window = "7d"): Promise<Accuracy> {
    return this.request("GET", `/api/v1/accuracy/${encodeURIComponent(symbol)}`, { window });
  }

  model(symbol: string): Promise<ServingModel> {
    return this.request("GET", `/api/v1/model/${encodeURIComponent(symbol)}`);
  }

  modelsHistory(symbol?: string, limit?: number): Promise<ModelHistory> {
    return this.request("GET", "/api/v1/models/history", { symbol, limit });
  }

  /** Pin, unpin, block or unblock a model (name@version); needs the API key. */
  operatorRequest(symbol: string, action: Action, request: OperatorRequest): Promise<Accepted> {
    if (!this.apiKey) throw new Error("operator requests need an apiKey");
    return this.request(
      "POST",
      `/api/v1/models/${encodeURIComponent(symbol)}/${action}`,
      {},
      { body: request, headers: { "X-API-Key": this.apiKey } },
    );
  }

  /** ws(s)://…/api/v1/stream?symbols=… for a WebSocket of your choice. */
  streamUrl(symbols?: string[], models: "served" | "all" = "served"): string {
    const url = new URL(this.baseUrl + "/api/v1/stream");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("models", models);
    if (symbols?.length) url.searchParams.set("symbols", symbols.map((s) => s.toUpperCase()).join(","));
    return url.toString();
  }
}

function toQuery(query: PageQuery): Record<string, string | number | undefined> {
  return {
    start: query.start ?? undefined,
    end: query.end ?? undefined,
    limit: query.limit,
    cursor: query.cursor ?? undefined,
  };
}
