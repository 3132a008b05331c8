// Logs in with the values pgtoken-rotator writes with pgtoken.io/format: jdbc, as a Java app
// does: JDBC_URL to DriverManager, JDBC_USER and JDBC_PASSWORD as the user and password
// properties (pgJDBC takes them separately).
//   java -cp /usr/share/java/postgresql.jar JdbcClient.java
// Trust for a private CA comes from the environment (JDBC_SSLROOTCERT, the sslrootcert
// property, as a pod would mount a CA file), never from the Secret. Prints {"user",
// "database", "ssl"} on success; on failure the exception's message (pgJDBC never puts the
// password in it) and exit status 1.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class JdbcClient {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.setProperty("user", System.getenv("JDBC_USER"));
        props.setProperty("password", System.getenv("JDBC_PASSWORD"));
        props.setProperty("connectTimeout", "10");
        String ca = System.getenv("JDBC_SSLROOTCERT");
        if (ca != null && !ca.isEmpty())
            props.setProperty("sslrootcert", ca);
        String q = "select current_user, current_database(), "
                + "(select ssl from pg_stat_ssl where pid = pg_backend_pid())";
        try (Connection c = DriverManager.getConnection(System.getenv("JDBC_URL"), props);
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(q)) {
            rs.next();
            System.out.printf("{\"user\":%s,\"database\":%s,\"ssl\":%b}%n", quote(rs.getString(1)),
                              quote(rs.getString(2)), rs.getBoolean(3));
        } catch (Exception e) {
            System.err.println(e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\')
                b.append('\\');
            b.append(ch);
        }
        return b.append('"').toString();
    }
}
