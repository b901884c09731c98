package io.odigos.opamp.vectors;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Reader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HexFormat;

/**
 * Answers one harness exchange: a request as JSON on stdin, the response as JSON on stdout (see
 * tests/src/langs/protocol.rs). Failures are reported per item, so one bad vector does not hide
 * the others.
 */
public final class Vectors {
  private Vectors() {}

  public static void main(String[] args) throws Exception {
    JsonObject request;
    try (Reader in = new InputStreamReader(System.in, StandardCharsets.UTF_8)) {
      request = JsonParser.parseReader(in).getAsJsonObject();
    } catch (RuntimeException err) {
      System.err.println("reading the request from stdin: " + err);
      System.exit(2);
      return;
    }
    Writer out = new OutputStreamWriter(System.out, StandardCharsets.UTF_8);
    out.write(answer(request).toString());
    out.flush();
  }

  static JsonObject answer(JsonObject request) {
    JsonArray encoded = new JsonArray();
    for (JsonElement element : request.getAsJsonArray("encode")) {
      JsonObject item = element.getAsJsonObject();
      JsonObject result = withId(item);
      try {
        Codec.Vector vector = Codec.readVector(Path.of(item.get("path").getAsString()));
        byte[] wire = Codec.encode(vector.type(), vector.message());
        result.addProperty("hex", HexFormat.of().formatHex(wire));
      } catch (Exception err) {
        result.addProperty("error", describe(err));
      }
      encoded.add(result);
    }
    JsonArray decoded = new JsonArray();
    for (JsonElement element : request.getAsJsonArray("decode")) {
      JsonObject item = element.getAsJsonObject();
      JsonObject result = withId(item);
      try {
        byte[] wire = HexFormat.of().parseHex(item.get("hex").getAsString());
        result.add("json", Codec.decode(item.get("type").getAsString(), wire));
      } catch (Exception err) {
        result.addProperty("error", describe(err));
      }
      decoded.add(result);
    }
    JsonObject runtime = new JsonObject();
    runtime.addProperty("language", "java");
    runtime.addProperty("library", "protobuf-java");
    runtime.addProperty("version", Codec.runtimeVersion());
    JsonObject response = new JsonObject();
    response.add("runtime", runtime);
    response.add("encoded", encoded);
    response.add("decoded", decoded);
    return response;
  }

  private static JsonObject withId(JsonObject item) {
    JsonObject result = new JsonObject();
    result.addProperty("id", item.get("id").getAsString());
    return result;
  }

  private static String describe(Exception err) {
    return err.getClass().getSimpleName() + ": " + err.getMessage();
  }
}
