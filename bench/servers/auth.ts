// The auth service behind nginx's auth_request in the `nginx-auth` system: 202 when the session cookie is the
// expected one, 401 otherwise. A stub (one string compare), so it flatters the reference architecture: a real
// oauth2-proxy also decrypts the cookie and looks the session up. Usage: node auth.ts <port> <cookie>
import http from 'node:http';

const [port, expected] = [Number(process.argv[2]), process.argv[3] ?? ''];
const [name, value] = expected.split('=') as [string, string];

http
  .createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const cookies = req.headers.cookie?.split(';').map((part) => part.trim()) ?? [];
    const ok = cookies.some((cookie) => cookie === `${name}=${value}`);
    res.writeHead(ok ? 202 : 401, { 'content-length': '0' }).end();
  })
  .listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
