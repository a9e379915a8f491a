// Reads the [metrics] listener: a plain-HTTP GET, and one sample's value out of the Prometheus text.
import http from 'node:http';

export function scrape(port: number, path = '/metrics'): Promise<{ status: number; type?: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (chunk: string) => {
            body += chunk;
          })
          .on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
      })
      .on('error', reject);
  });
}

/** The value of one series, e.g. sample(text, 'gatehouse_requests_total{site="app",code="200"}'); undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
